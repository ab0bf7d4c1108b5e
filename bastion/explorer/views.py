"""Browsing: a database's tables, a table's rows, one row, one binary value.

Views parse the request, call the explorer's services and render; every one
declares its permission (T20). Names of schemas and tables travel as query
parameters (``?s=&t=``), so any name the engine allows survives the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe
from sqlalchemy.exc import SQLAlchemyError

from bastion.access.decorators import requires, signed_in
from bastion.access.models import Action, ColumnMode
from bastion.access.policy import Resource, check, visible_tables
from bastion.connections import counts, reflection
from bastion.connections.errors import ConnectionDisabled, safe_message
from bastion.connections.netguard import TargetRefused
from bastion.connections.sqlite_guard import SqlitePathRefused
from bastion.explorer import rows as row_service
from bastion.explorer.access import OpenTable, open_table, table_resource, visible_connection
from bastion.explorer.browse import PAGE_SIZES, BrowseParams, Page, browse
from bastion.explorer.filters import OPERATORS
from bastion.explorer.history import event_rows, reverted_seqs, row_history
from bastion.explorer.links import database_url, page_url, table_query
from bastion.explorer.schema import KeyKind, TableInfo
from bastion.explorer.values import Cell

# Anything that stops Bastion from reaching or reading a target database.
UNREACHABLE = (SQLAlchemyError, ConnectionDisabled, SqlitePathRefused, TargetRefused, OSError)
NUMERIC_KINDS = frozenset({"integer", "decimal", "float"})


def problem_page(request: HttpRequest, connection: Any, exc: BaseException) -> HttpResponse:
    return render(request, "explorer/problem.html",
                  {"connection": connection, "message": safe_message(exc)})


TableView = Callable[..., HttpResponse]


def table_view(*, editable: bool = False) -> Callable[[TableView], TableView]:
    """For views about one table: ``view(request, opened, **kwargs)`` gets the table ``?s=&t=`` names (404
    when the user may not see it, or with ``editable`` when its rows cannot be told apart), and a database
    that cannot be reached gives the problem page instead of an error. Goes under the permission decorator."""

    def decorator(view: TableView) -> TableView:
        @wraps(view)
        def wrapped(request: HttpRequest, connection_id: int, **kwargs: Any) -> HttpResponse:
            connection = visible_connection(request.user, connection_id)
            try:
                opened = open_table(request, connection)
                if editable and not opened.info.editable:
                    raise Http404("Rows of this table cannot be changed here.")
                return view(request, opened, **kwargs)
            except UNREACHABLE as exc:
                return problem_page(request, connection, exc)
        return wrapped
    return decorator


def table_context(opened: OpenTable, **extra: Any) -> dict[str, Any]:
    """What every page about one table shows: where it is, and the way back."""
    info = opened.info
    return {
        "connection": info.connection,
        "info": info,
        "opened": opened,
        "database_url": database_url(info.connection.pk, info.schema),
        "table_url": page_url("table", info.connection.pk, info.schema, info.name),
        "table_query": table_query(info.schema, info.name),
        "can_revert": can_revert(opened),
        **extra,
    }


def table_url(connection_id: int, schema: str | None, table: str) -> str:
    return page_url("table", connection_id, schema, table)


@dataclass(frozen=True)
class DisplayCell:
    cell: Cell
    numeric: bool
    link_url: str | None
    download_url: str | None


@dataclass(frozen=True)
class DisplayRow:
    token: str | None
    url: str | None
    items: list[DisplayCell]


def _display_rows(connection_id: int, table: TableInfo, page: Page) -> list[DisplayRow]:
    """The page's rows with every URL built here, so templates only print (reverse() once per page)."""
    row_base = reverse("explorer:row", args=[connection_id]) + "?"
    download_base = reverse("explorer:download", args=[connection_id]) + "?"
    here = table_query(table.schema, table.name)
    rows = []
    for row in page.rows:
        token = f"k={row.token}" if row.token else ""  # tokens are URL-safe as they are (tokens.URL_SAFE)
        items = []
        for column, shown, link in zip(page.columns, row.cells, row.links, strict=True):
            download = None
            if shown.binary_size is not None and token:
                download = f"{download_base}{here}&{token}&{urlencode({'c': column.name})}"
            link_url = f"{row_base}{table_query(link.schema, link.table, k=link.token)}" if link else None
            items.append(DisplayCell(shown, column.kind in NUMERIC_KINDS, link_url, download))
        rows.append(DisplayRow(row.token, f"{row_base}{here}&{token}" if token else None, items))
    return rows


# --- a database ---------------------------------------------------------------------------------
@require_safe
@signed_in
def database(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Permission: signed in; only connections and tables the user's grants reach are shown (404 otherwise)."""
    connection = visible_connection(request.user, connection_id)
    try:
        default = reflection.default_schema(connection)
        schemas = [name for name in reflection.schema_names(connection)
                   if name == default or visible_tables(request.user, connection.pk, name,
                                                        reflection.table_names(connection, name)
                                                        + reflection.view_names(connection, name))]
        chosen = request.GET.get("s") or None
        if chosen is not None and chosen not in schemas:
            raise Http404("No such schema.")
        schema = None if chosen == default else chosen
        tables = visible_tables(request.user, connection.pk, schema, reflection.table_names(connection, schema))
        views = visible_tables(request.user, connection.pk, schema, reflection.view_names(connection, schema))
        row_counts = counts.row_counts(connection, schema) if tables else {}
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)
    context = {
        "connection": connection,
        "schemas": schemas if len(schemas) > 1 else [],
        "current_schema": chosen or default,
        "tables": [(name, table_url(connection.pk, schema, name), row_counts.get(name)) for name in tables],
        "views": [(name, table_url(connection.pk, schema, name)) for name in views],
        "can_query": check(request.user, Action.QUERY, Resource(connection.pk)),
        "can_alter": check(request.user, Action.ALTER, Resource(connection.pk, chosen)),
        "can_import_new": check(request.user, Action.ALTER, Resource(connection.pk, chosen))
        and check(request.user, Action.IMPORT, Resource(connection.pk, chosen)),
    }
    return render(request, "explorer/database.html", context)


# --- a table ---------------------------------------------------------------------------------------
def _with(query: QueryDict, **changes: Any) -> str:
    """``query`` with some parameters replaced (None removes one), as ``?...``."""
    params = [(name, value) for name, values in query.lists() if name not in changes for value in values]
    params += [(name, value) for name, value in changes.items() if value is not None]
    return "?" + urlencode(params)


def _paging_links(query: QueryDict, page: Any, size: int) -> dict[str, str | None]:
    if page.offset is not None:
        return {
            "first": None if page.is_first else _with(query, offset=None),
            "prev": None if page.is_first else _with(query, offset=str(max(0, page.offset - size)) or None),
            "next": None if page.is_last else _with(query, offset=str(page.offset + size)),
            "last": None,
        }
    cleared = {"after": None, "before": None, "last": None}
    return {
        "first": None if page.is_first else _with(query, **cleared),
        "prev": _with(query, **{**cleared, "before": page.prev_before}) if page.prev_before else None,
        "next": _with(query, **{**cleared, "after": page.next_after}) if page.next_after else None,
        "last": None if page.is_last else _with(query, **{**cleared, "last": "1"}),
    }


def _header(table: OpenTable, page: Any, query: QueryDict) -> list[dict[str, Any]]:
    reset = {"after": None, "before": None, "last": None, "offset": None}
    headers = []
    for column in page.columns:
        view = page.views[column.name]
        sortable = column.sortable and view.mode == ColumnMode.VISIBLE
        current = page.sort == column.name
        descending = current and not page.descending
        headers.append({
            "column": column,
            "masked": view.mode == ColumnMode.MASKED,
            "fk": table.linkable.get(column.name),
            "sort_url": _with(query, sort=column.name, dir="desc" if descending else None, **reset)
            if sortable else None,
            "sorted": ("desc" if page.descending else "asc") if current else None,
        })
    return headers


@require_safe
@requires(Action.VIEW, resource=table_resource)
@table_view()
def table(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: view on the table. Rows in keyset pages, with filters, search and sort from the URL."""
    info = opened.info
    params = BrowseParams.from_query(request.GET)
    page = browse(info, opened.access.columns, params, opened.linkable)
    for message in page.errors:
        messages.error(request, message)
    return render(request, "explorer/table.html", table_context(
        opened,
        page=page,
        params=params,
        headers=_header(opened, page, request.GET),
        links=_paging_links(request.GET, page, params.size),
        display_rows=_display_rows(info.connection.pk, info, page),
        filter_rows=[*params.filters, None],
        filterable=[c for c in page.columns if page.views[c.name].mode == ColumnMode.VISIBLE],
        operators=OPERATORS,
        page_sizes=PAGE_SIZES,
        can_insert=info.editable and Action.INSERT in opened.access.actions and bool(opened.access.insertable),
        can_delete=info.editable and Action.DELETE in opened.access.actions,
        can_drop=Action.DROP in opened.access.actions,
        can_export=Action.EXPORT in opened.access.actions,
        can_import=not info.is_view and Action.IMPORT in opened.access.actions and bool(opened.access.insertable),
        can_alter=Action.ALTER in opened.access.actions and not opened.info.is_view,
        offset_paging=info.key_kind == KeyKind.NONE,
    ))


def can_revert(opened: OpenTable) -> bool:
    """Show Revert buttons? (changes.revert checks the exact grants the reverse operation needs.)"""
    return opened.info.editable and bool({Action.INSERT, Action.UPDATE, Action.DELETE} & opened.access.actions)


# --- a row -----------------------------------------------------------------------------------------
def open_row(request: HttpRequest, opened: OpenTable) -> row_service.RowView:
    """The row ``?k=`` names in the opened table; Http404 when there is none."""
    found = row_service.find_row(opened.info, opened.access.columns, request.GET.get("k", ""))
    if found is None:
        raise Http404("No such row.")
    return found


@require_safe
@requires(Action.VIEW, resource=table_resource)
@table_view()
def row(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: view on the table. Every visible value in full, links both ways, the row's history."""
    info = opened.info
    found = open_row(request, opened)
    history = row_history(info, found.key_values)
    actions = opened.access.actions
    return render(request, "explorer/row.html", table_context(
        opened,
        row=found,
        fields=row_service.row_fields(info, opened.access.columns, opened.linkable, found),
        referenced_by=row_service.referenced_by(request.user, info, opened.access.columns, found),
        history=[(event, event_rows(event, opened.access.columns)) for event in history],
        reverted=reverted_seqs(history),
        can_update=info.editable and Action.UPDATE in actions and bool(opened.access.updatable),
        can_delete=info.editable and Action.DELETE in actions,
        edit_url=page_url("row_edit", info.connection.pk, info.schema, info.name, k=found.token),
        delete_url=page_url("row_delete", info.connection.pk, info.schema, info.name, k=found.token),
    ))


@require_safe
@requires(Action.VIEW, resource=table_resource)
@table_view()
def download(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: view on the table, and the column in clear. One binary or text value, as a file."""
    found = open_row(request, opened)
    name = request.GET.get("c", "")
    view = opened.access.columns.get(name)
    if view is None or view.mode == ColumnMode.HIDDEN or name not in found.values:
        raise Http404("No such column.")
    if view.mode != ColumnMode.VISIBLE:
        raise Http404("This value is masked.")
    value = found.values[name]
    if value is None:
        raise Http404("This value is NULL.")
    return row_service.as_attachment(opened.info, name, value)
