"""Changing rows: insert, edit, delete, bulk delete, revert, and a table's recent changes.

Each view parses the request, calls one service in bastion.explorer.changes
(which re-checks the grants, runs one transaction and writes one audit event)
and renders. Forms that may be submitted after the session ended keep their
input across the new login (bastion.accounts.pending.keeps_input).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.accounts.pending import RESUMED_MESSAGE, keeps_input
from bastion.audit.models import AuditEvent
from bastion.explorer import changes, forms
from bastion.explorer import rows as row_service
from bastion.explorer.access import OpenTable, table_resource
from bastion.explorer.history import event_rows, reverted_seqs, table_history
from bastion.explorer.links import page_url, table_query
from bastion.explorer.views import open_row, table_context, table_view


def _table_url(opened: OpenTable) -> str:
    info = opened.info
    return page_url("table", info.connection.pk, info.schema, info.name)


def _row_url(opened: OpenTable, token: str) -> str:
    info = opened.info
    return page_url("row", info.connection.pk, info.schema, info.name, k=token)


def _resumed(request: HttpRequest) -> Any:
    data = getattr(request, "resumed_post", None)
    if data is not None:
        messages.info(request, RESUMED_MESSAGE)
    return data


@keeps_input
@requires(Action.INSERT, resource=table_resource)
@table_view(editable=True)
def row_new(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: insert on the table. A form generated from reflection."""
    form_class = forms.row_form_class(opened.info, opened.access, "insert")
    data = request.POST if request.method == "POST" else _resumed(request)
    form = form_class(data, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            token = changes.insert_row(request.user, request, opened.info, form.values())
        except changes.ChangeRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Row inserted.")
            return redirect(_row_url(opened, token))
    return render(request, "explorer/row_form.html", table_context(opened, form=form, mode="insert"),
                  status=400 if form.is_bound and form.errors else 200)


def _after_conflict(opened: OpenTable, form_class: type[forms.RowForm], posted: QueryDict,
                    conflict: changes.EditConflict, token: str) -> forms.RowForm | None:
    """The form again after a lost race: fields someone else changed show their new value, the user's other
    input is kept, and ``original`` now stands for the row as it is (so a deliberate second save goes through)."""
    current = row_service.find_row(opened.info, opened.access.columns, token)
    if current is None:
        return None  # the row is gone
    fresh = forms.initial_from_row(opened.info, opened.access, current.values)
    data = posted.copy()
    for entry in form_class.entries:
        if entry.column.name in conflict.changes:
            data[entry.name] = fresh.get(entry.name, "")
            if entry.null_name:
                data.pop(entry.null_name, None)
                if fresh.get(entry.null_name):
                    data[entry.null_name] = "on"
    data["original"] = fresh["original"]
    return form_class(data, row=current.values)


@keeps_input
@requires(Action.UPDATE, resource=table_resource)
@table_view(editable=True)
def row_edit(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: update on the table. Saves only if nobody changed the row since the form was loaded (T38)."""
    conflict = None
    found = open_row(request, opened)
    form_class = forms.row_form_class(opened.info, opened.access, "update")
    data = request.POST if request.method == "POST" else _resumed(request)
    form = form_class(data, request.FILES or None, row=found.values)
    if request.method == "POST" and form.is_valid():
        try:
            token = changes.update_row(request.user, request, opened.info, found.token, form.original, form.values())
        except changes.EditConflict as exc:
            conflict = exc
            form = _after_conflict(opened, form_class, request.POST, exc, found.token)
            if form is None:
                messages.error(request, "This row no longer exists: someone deleted it (or changed its key) "
                                        "after you opened the form. Nothing was saved.")
                return redirect(_table_url(opened))
        except changes.ChangeRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Row saved.")
            return redirect(_row_url(opened, token))
    status = 409 if conflict else 400 if form.is_bound and form.errors else 200
    return render(request, "explorer/row_form.html",
                  table_context(opened, form=form, mode="update", conflict=conflict,
                                row_url=_row_url(opened, found.token)), status=status)


@requires(Action.DELETE, resource=table_resource)
@table_view(editable=True)
def row_delete(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: delete on the table. A confirmation page; the POST deletes with the optimistic check."""
    found = open_row(request, opened)
    original = request.POST.get("original") or changes.original_token(opened.info, found.values)
    if request.method == "POST":
        try:
            changes.delete_row(request.user, request, opened.info, found.token, original)
        except changes.ChangeRefused as exc:  # EditConflict included
            messages.error(request, str(exc))
        else:
            messages.success(request, "Row deleted. You can revert it from the table's Changes page.")
            return redirect(_table_url(opened))
    fields = row_service.row_fields(opened.info, opened.access.columns, {}, found)
    return render(request, "explorer/row_delete.html",
                  table_context(opened, fields=fields, original=original, row_url=_row_url(opened, found.token)))


BULK_SELECTION = "bastion_bulk_delete"  # session key: rows chosen before a password check


def _bulk_selection(request: HttpRequest) -> list[str]:
    """The rows to delete: from the POST, or (GET after re-authentication) the ones kept in the session."""
    if request.method == "POST":
        return request.POST.getlist("k")
    kept = request.session.get(BULK_SELECTION) or {}
    return list(kept.get("keys", [])) if kept.get("path") == request.path + "?" + _table_part(request) else []


def _table_part(request: HttpRequest) -> str:
    return table_query(request.GET.get("s") or None, request.GET.get("t") or "")


@require_http_methods(["GET", "POST"])
@requires(Action.DELETE, resource=table_resource)
@table_view(editable=True)
def bulk_delete(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: delete on the table. First POST: confirm; second: delete. Above a configurable number of
    rows the password is asked again first (allauth's re-authentication); its ``next`` is this page (GET),
    which shows the confirmation again for the rows kept in the session."""
    from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate

    keys = _bulk_selection(request)
    if not keys:
        messages.error(request, "Select the rows to delete first.")
        return redirect(_table_url(opened))
    needs_reauth = len(keys) > settings.EXPLORER_BULK_REAUTH_ROWS and not did_recently_reauthenticate(request)
    if request.method == "POST" and request.POST.get("confirm") == "1":
        if needs_reauth:
            here = request.path + "?" + _table_part(request)
            request.session[BULK_SELECTION] = {"path": here, "keys": keys[: changes.MAX_BULK_ROWS]}
            return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': here})}")
        request.session.pop(BULK_SELECTION, None)
        try:
            deleted = changes.delete_rows(request.user, request, opened.info, keys)
        except changes.ChangeRefused as exc:  # EditConflict included
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{deleted} row{'s' if deleted != 1 else ''} deleted. You can revert this "
                                      f"from the table's Changes page.")
        return redirect(_table_url(opened))
    return render(request, "explorer/bulk_delete.html",
                  table_context(opened, keys=keys, needs_reauth=needs_reauth))


@require_safe
@requires(Action.VIEW, resource=table_resource)
@table_view()
def table_changes(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: view on the table. Its recent row changes, newest first, each revertible."""
    history = table_history(opened.info)
    events = [(event, event_rows(event, opened.access.columns)) for event in history]
    return render(request, "explorer/changes.html",
                  table_context(opened, events=events, reverted=reverted_seqs(history)))


@require_POST
@requires(Action.VIEW, resource=table_resource)
@table_view()
def revert(request: HttpRequest, opened: OpenTable, seq: int) -> HttpResponse:
    """Permission: view on the table here; changes.revert checks the grants the reverse operation needs."""
    info = opened.info
    event = AuditEvent.objects.filter(seq=seq).only("pk", "details").first()
    details = event.details if event is not None and isinstance(event.details, dict) else {}
    if (details.get("connection_id"), details.get("schema"), details.get("table")) != (
            info.connection.pk, info.schema, info.name):
        raise Http404("No such change in this table.")
    try:
        changes.revert(request.user, request, event.pk)
    except changes.ChangeRefused as exc:  # EditConflict included
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Change #{seq} reverted.")
    return redirect(page_url("changes", info.connection.pk, info.schema, info.name))
