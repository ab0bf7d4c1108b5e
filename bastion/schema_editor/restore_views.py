"""Restoring a dropped table from the audit log: a confirmation page, then the restore (T37, T20).

Permission: ``audit_view`` to see the page; it shows where the table goes back and the exact statements
(the definition the audit log already holds), never a kept value (T31). Restoring also needs ``alter`` on
the schema and ``insert`` on the table and each of its columns (restore.may_restore, checked again by
restore.run): a POST without them is 403. A POST restores only after a recent re-authentication
(allauth); otherwise the user is sent to re-authenticate and comes back to this page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.explorer.links import page_url
from bastion.schema_editor import restore
from bastion.schema_editor.snapshots import size_label
from bastion.web.errors import error_response


def _page(request: HttpRequest, found: restore.Plan, *, status: int = 200, problem: str = "") -> HttpResponse:
    allowed = restore.may_restore(request.user, found)
    snapshot = found.snapshot
    return render(request, "schema_editor/restore_table.html", {
        "plan": found,
        "problem": problem or found.problem,
        "allowed": allowed,
        "refusal": "" if allowed else restore.refusal(found),
        "size": size_label(len(snapshot.data or b"")) if snapshot.rows_kept else "",
    }, status=status)


@require_http_methods(["GET", "POST"])
@requires(Action.AUDIT_VIEW)
def restore_table(request: HttpRequest, event_id: int) -> HttpResponse:
    """Permission: audit_view (the page); restoring also needs alter on the schema and insert on the table.
    GET: the confirmation page. POST: with a recent re-authentication, the table recreated with its kept rows,
    and the user sent to it in the explorer."""
    from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate

    try:
        found = restore.plan(request.user, event_id)
    except restore.NotFound:
        raise Http404("No dropped table with a snapshot has this event.") from None
    if request.method == "GET":
        return _page(request, found)
    if found.problem == restore.GONE:
        return _page(request, found, status=409)
    if not restore.may_restore(request.user, found):
        return error_response(request, 403, restore.refusal(found))
    if not did_recently_reauthenticate(request):
        return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': request.path})}")
    try:
        restore.run(request.user, request, event_id)
    except restore.NotFound:
        raise Http404("No dropped table with a snapshot has this event.") from None
    except restore.NotPermitted as exc:
        return error_response(request, 403, str(exc))
    except (restore.Refused, restore.RestoreFailed) as exc:
        return _page(request, restore.plan(request.user, event_id), status=409, problem=str(exc))
    rows = found.rows or 0
    messages.success(request, f"Table “{found.table}” restored with {rows:,} row{'s' if rows != 1 else ''}.")
    return redirect(page_url("table", found.connection_id, found.schema, found.table))
