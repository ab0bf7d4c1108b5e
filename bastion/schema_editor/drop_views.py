"""Dropping a table or view, or emptying a table: a confirmation page, then the statement (T37).

Permission: ``drop`` on the table (T20), and the table must be one the user may see
(else 404, as everywhere in the explorer). A GET only shows what would happen: the
statement, a bounded row count and the foreign keys that refer to the table. A POST
runs it only when the user typed the table's exact name and has re-authenticated in
the last few minutes (allauth); otherwise they are sent to re-authenticate and come
back to this page, where they type the name again (it is not kept).

Two-person rule: when one of the user's roles makes the chosen action wait for a second
person (bastion.schema_editor.approvals), the same POST asks for approval instead of running,
and the user lands on the approvals page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.explorer.access import OpenTable, table_resource
from bastion.explorer.links import database_url
from bastion.explorer.views import table_context, table_view
from bastion.schema_editor import approvals, drop


def _here(request: HttpRequest, opened: OpenTable, action: str) -> str:
    query = {key: value for key, value in (("s", opened.info.schema), ("t", opened.info.name)) if value}
    query["a"] = action
    return f"{request.path}?{urlencode(query)}"


def _page(request: HttpRequest, opened: OpenTable, action: str, *, status: int = 200,
          problem: str | None = None) -> HttpResponse:
    plan = drop.plan(request.user, opened.info)
    choices = drop.actions_for(opened.info)
    needs_approval = sorted(approvals.needed_operations(request.user) & set(choices))
    return render(request, "schema_editor/drop_table.html", table_context(
        opened, plan=plan, action=action, problem=problem,
        choices=[(choice, plan.statements[choice]) for choice in choices],
        needs_approval=needs_approval, only_with_approval=len(needs_approval) == len(choices),
        snapshot_rows=settings.DROP_SNAPSHOT_MAX_ROWS,
        approval_hours=round(settings.SCHEMA_APPROVAL_SECONDS / 3600, 1),
    ), status=status)


def _ask_for_approval(request: HttpRequest, opened: OpenTable, action: str) -> HttpResponse:
    """The user's role makes ``action`` wait for a second person: ask, with the statement the page showed."""
    plan = drop.plan(request.user, opened.info)
    if action in plan.blocked:  # it could never run: do not ask anybody to approve it
        return _page(request, opened, action, status=400, problem=plan.blocked[action])
    approval = approvals.submit(request.user, request, opened.info, action, [plan.statements[action]])
    messages.success(request, f"Your request to {'drop' if action == drop.DROP else 'empty'} “{opened.info.name}” "
                              f"waits for another person's approval until {approvals.when(approval.expires_at)}. "
                              "Nothing was changed yet.")
    return redirect("approvals:list")


@require_http_methods(["GET", "POST"])
@requires(Action.DROP, resource=table_resource)
@table_view()
def drop_table(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: drop on the table. GET: the confirmation page. POST: with the table's name typed exactly and
    a recent re-authentication, the table (or view) dropped, or the table emptied, and the user sent to the
    database page."""
    from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate

    info = opened.info
    choices = drop.actions_for(info)
    params: Any = request.POST if request.method == "POST" else request.GET
    action = params.get("a") or params.get("action") or drop.DROP
    try:
        if action not in choices:
            return _page(request, opened, drop.DROP, status=400,
                         problem="A view can be dropped, not emptied." if info.is_view else "Choose drop or empty.")
        if request.method == "GET":
            return _page(request, opened, action)
        if request.POST.get("name", "") != info.name:
            return _page(request, opened, action, status=400,
                         problem="The name you typed is not the table's name, so nothing was changed. Type it "
                                 "exactly as shown.")
        if not did_recently_reauthenticate(request):
            here = _here(request, opened, action)
            return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': here})}")
        if approvals.needed(request.user, info.connection, action):
            return _ask_for_approval(request, opened, action)
        count = drop.run(request.user, request, info, action, request.POST.get("name", ""))
    except drop.NotPermitted:
        raise PermissionDenied from None
    except (drop.Refused, approvals.Refused) as exc:
        return _page(request, opened, action, status=400, problem=str(exc))
    except drop.DropFailed as exc:
        return _page(request, opened, action, status=409, problem=str(exc))
    messages.success(request, approvals.outcome_message(info, action, count))
    return redirect(database_url(info.connection.pk, info.schema))
