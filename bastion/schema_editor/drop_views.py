"""Dropping a table or view, or emptying a table: a confirmation page, then the statement (T37).

Permission: ``drop`` on the table (T20), and the table must be one the user may see
(else 404, as everywhere in the explorer). A GET only shows what would happen: the
statement, a bounded row count and the foreign keys that refer to the table. A POST
runs it only when the user typed the table's exact name and has re-authenticated in
the last few minutes (allauth); otherwise they are sent to re-authenticate and come
back to this page, where they type the name again (it is not kept).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

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
from bastion.schema_editor import drop


def _here(request: HttpRequest, opened: OpenTable, action: str) -> str:
    query = {key: value for key, value in (("s", opened.info.schema), ("t", opened.info.name)) if value}
    query["a"] = action
    return f"{request.path}?{urlencode(query)}"


def _page(request: HttpRequest, opened: OpenTable, action: str, *, status: int = 200,
          problem: str | None = None) -> HttpResponse:
    plan = drop.plan(request.user, opened.info)
    return render(request, "schema_editor/drop_table.html", table_context(
        opened, plan=plan, action=action, problem=problem,
        choices=[(choice, plan.statements[choice]) for choice in drop.actions_for(opened.info)],
    ), status=status)


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
        count = drop.run(request.user, request, info, action, request.POST.get("name", ""))
    except drop.NotPermitted:
        raise PermissionDenied from None
    except drop.Refused as exc:
        return _page(request, opened, action, status=400, problem=str(exc))
    except drop.DropFailed as exc:
        return _page(request, opened, action, status=409, problem=str(exc))
    kind = "View" if info.is_view else "Table"
    if action == drop.DROP:
        messages.success(request, f"{kind} “{info.name}” dropped.")
    else:
        held = f" ({count.label} row{'s' if count.value != 1 or count.more_than else ''} deleted)" if count else ""
        messages.success(request, f"Table “{info.name}” emptied{held}.")
    return redirect(database_url(info.connection.pk, info.schema))
