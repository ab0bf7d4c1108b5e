"""The structure page: a table's columns, indexes and foreign keys, and one form per kind of change.

Permission: ``alter`` on the table (T20); the table must be one the user may see
(404 otherwise). A GET only shows. A POST names one change (``op``): first it
comes back with the exact statements it would run and a signed token of them; a
second POST with that token (``confirm``) runs it (alter.run checks everything
again and runs only what was previewed). A column drop that the user's role puts
under the two-person rule becomes a request for approval instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.accounts.pending import RESUMED_MESSAGE, keeps_input
from bastion.explorer.access import OpenTable, table_resource
from bastion.explorer.links import table_query
from bastion.explorer.views import table_context, table_view
from bastion.schema_editor import alter, alter_approval, alter_checks, approvals, services
from bastion.schema_editor.alter_forms import BY_OP, FORMS, ChangeForm


def _forms(structure: alter_checks.Structure, dialect: Any, bound: ChangeForm | None) -> list[ChangeForm]:
    return [bound if bound is not None and type(bound) is form else form(structure=structure, dialect=dialect)
            for form in FORMS]


def _page(request: HttpRequest, opened: OpenTable, structure: alter_checks.Structure, dialect: Any, *,
          bound: ChangeForm | None = None, status: int = 200, **extra: Any) -> HttpResponse:
    return render(request, "schema_editor/alter_table.html", table_context(
        opened, structure=structure, forms=_forms(structure, dialect, bound), bound=bound,
        columns=[c for c in opened.info.columns if c.name in structure.columns],
        drop_column_needs_approval=approvals.needed(request.user, opened.info.connection, approvals.DROP_COLUMN),
        **extra), status=status)


def _structure_url(opened: OpenTable, name: str) -> str:
    info = opened.info
    return f"{reverse('schema_editor:alter_table', args=[info.connection.pk])}?{table_query(info.schema, name)}"


@require_http_methods(["GET", "POST"])
@keeps_input
@requires(Action.ALTER, resource=table_resource)
@table_view()
def alter_table(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: alter on the table. GET: the structure and the forms. POST: one change previewed, or (with
    the preview's token) made, and the user sent back here (to the new name after a rename)."""
    info = opened.info
    try:
        structure = alter_checks.structure(request.user, info)
    except alter_checks.NotPermitted:
        raise PermissionDenied from None
    dialect = services.connected_dialect(info.connection)
    data: Any = request.POST if request.method == "POST" else request.resumed_post
    if data is None:
        return _page(request, opened, structure, dialect)
    if request.method == "GET":
        messages.info(request, RESUMED_MESSAGE)
    form_class = BY_OP.get(data.get("op", ""))
    if form_class is None:
        return _page(request, opened, structure, dialect, status=400, problem="Choose a change to make.")
    form = form_class(data, structure=structure, dialect=dialect)
    if not form.is_valid() or request.method == "GET":
        return _page(request, opened, structure, dialect, bound=form, status=200 if form.is_valid() else 400)
    change = form.change()
    problem = None
    try:
        if "confirm" in data:
            try:
                if alter_approval.needs_approval(request.user, info, change):
                    approval = alter_approval.ask_approval(request.user, request, info, change, data.get("token", ""))
                    messages.info(request, "Your role needs another person's approval for this: it waits under "
                                           f"Approvals until {approvals.when(approval.expires_at)}.")
                    return redirect("approvals:list")
                name = alter.run(request.user, request, info, change, data.get("token", ""))
            except alter.PreviewMismatch as exc:
                problem = str(exc)
            else:
                messages.success(request, f"{change.label}: done.")
                return redirect(_structure_url(opened, name))
        planned = alter.plan(request.user, info, change)
    except (alter_checks.Refused, alter.AlterFailed, approvals.Refused) as exc:
        return _page(request, opened, structure, dialect, bound=form, status=400, problem=str(exc))
    except alter_checks.NotPermitted:
        raise PermissionDenied from None
    return _page(request, opened, structure, dialect, bound=form, status=409 if problem else 200, problem=problem,
                 planned=planned, token=alter.preview_token(request.user, info, planned))
