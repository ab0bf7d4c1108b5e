"""One page of a table for one user: filters, search, sort, keyset paging, masking, bounded counts.

Hidden columns are never selected (a key column the user cannot see is read
only to build the opaque row and page tokens). Masked values are masked here,
before anything reaches a template (T31).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import QueryDict
from sqlalchemy import ColumnElement, String, and_, cast, func, literal, select
from sqlalchemy.exc import DBAPIError

from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView
from bastion.connections import counts, limits
from bastion.connections.counts import RowCount
from bastion.connections.engines import get_engine
from bastion.connections.errors import safe_message
from bastion.explorer import keyset, tokens
from bastion.explorer.filters import (
    Filter,
    FilterError,
    filter_conditions,
    read_filters,
    search_condition,
    usable_column,
)
from bastion.explorer.rowkeys import own_row_token, row_digest, row_token
from bastion.explorer.schema import ColumnInfo, KeyKind, TableInfo
from bastion.explorer.values import TRUNCATE_AT, Cell, Preview, cell

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 50
FILTERED_COUNT_LIMIT = 1000
MAX_OFFSET = 1_000_000  # OFFSET paging (tables without any key) stops here: deeper pages cost a full scan


@dataclass(frozen=True)
class BrowseParams:
    filters: tuple[Filter, ...] = ()
    search: str = ""
    sort: str | None = None
    descending: bool = False
    size: int = DEFAULT_PAGE_SIZE
    after: str | None = None
    before: str | None = None
    last: bool = False
    offset: int = 0

    @classmethod
    def from_query(cls, query: QueryDict) -> BrowseParams:
        try:
            size = int(query.get("size", DEFAULT_PAGE_SIZE))
        except ValueError:
            size = DEFAULT_PAGE_SIZE
        try:
            offset = max(0, min(int(query.get("offset", 0)), MAX_OFFSET))
        except ValueError:
            offset = 0
        return cls(
            filters=tuple(read_filters(query)),
            search=query.get("q", "").strip(),
            sort=query.get("sort") or None,
            descending=query.get("dir") == "desc",
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
            after=query.get("after") or None,
            before=query.get("before") or None,
            last=query.get("last") == "1",
            offset=offset,
        )


@dataclass(frozen=True)
class Link:
    """Where a foreign-key value leads: the referred table and a row token."""

    schema: str | None
    table: str
    token: str


@dataclass(frozen=True)
class Row:
    token: str | None  # opens the row page; None when rows cannot be told apart
    cells: tuple[Cell, ...]
    links: tuple[Link | None, ...]


@dataclass
class Page:
    columns: list[ColumnInfo]
    views: Mapping[str, ColumnView]
    rows: list[Row] = field(default_factory=list)
    sort: str | None = None
    descending: bool = False
    next_after: str | None = None
    prev_before: str | None = None
    is_first: bool = True
    is_last: bool = True
    count: RowCount | None = None
    filtered: bool = False  # the count is of the rows matching filters or search
    offset: int | None = None  # set when the table has no key and pages go by OFFSET
    errors: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def cursor_token(purpose: str, connection_id: int, schema: str | None, table: str, sort: str | None,
                 descending: bool, key: Sequence[str], values: Sequence[Any]) -> str:
    """A page cursor ("after" or "before" the row whose sort and key values are ``values``).

    It names the table, the sort and the key it was made for and is refused on any other view: values
    seeked against another table's key would reveal that key's hidden or masked values (T31).
    """
    return tokens.seal(purpose, [connection_id, schema, table, sort, bool(descending), list(key), list(values)])


@dataclass
class _Plan:
    """The SQL pieces of one page request."""

    info: TableInfo
    visible: list[ColumnInfo]
    sort: ColumnInfo | None
    descending: bool
    conditions: list[ColumnElement[bool]]
    errors: list[str]
    notices: list[str]


def _sort_column(info: TableInfo, views: Mapping[str, ColumnView], params: BrowseParams,
                 errors: list[str]) -> ColumnInfo | None:
    if params.sort is None:
        return None
    try:
        column = usable_column(info, views, params.sort, "sort")
    except FilterError as exc:
        errors.append(str(exc))
        return None
    if not column.sortable:
        errors.append(f"{column.name} cannot be sorted (its values have no order).")
        return None
    return column


def _plan(info: TableInfo, views: Mapping[str, ColumnView], params: BrowseParams, sa_table: Any) -> _Plan:
    visible = [c for c in info.columns if views[c.name].mode != ColumnMode.HIDDEN]
    conditions, errors = filter_conditions(info, sa_table, views, params.filters)
    if params.search:
        try:
            conditions.append(search_condition(info, sa_table, views, params.search))
        except FilterError as exc:
            errors.append(str(exc))
    sort = _sort_column(info, views, params, errors)
    notices = []
    if sort is not None and sort.name not in info.indexed and info.key_kind != KeyKind.NONE:
        notices.append(f"{sort.name} has no index: sorting by it reads the whole table, and a very large table "
                       f"may hit the time limit. Add a filter to narrow it down.")
    return _Plan(info, visible, sort, params.descending, conditions, errors, notices)


def _masked_cells(visible: Sequence[ColumnInfo], views: Mapping[str, ColumnView], row: Sequence[Any]) -> tuple[
        Cell, ...]:
    return tuple(cell(row[i], views[c.name]) for i, c in enumerate(visible))


def _fk_links(info: TableInfo, visible: Sequence[ColumnInfo], views: Mapping[str, ColumnView],
              linkable: Mapping[str, Any], row: Sequence[Any]) -> tuple[Link | None, ...]:
    links: list[Link | None] = []
    for i, column in enumerate(visible):
        fk = linkable.get(column.name)
        value = row[i]
        if fk is None or value is None or views[column.name].mode != ColumnMode.VISIBLE:
            links.append(None)
        else:
            links.append(Link(fk.referred_schema, fk.referred_table, row_token(
                info.connection.pk, fk.referred_schema, fk.referred_table, fk.referred_columns, [value])))
    return tuple(links)


class PageFailed(Exception):
    """The database could not produce the page; the message is safe to show."""


def _run(info: TableInfo, statement: Any) -> list[Sequence[Any]]:
    seconds = settings.EXPLORER_QUERY_TIMEOUT
    try:
        with get_engine(info.connection).connect() as conn, limits.statement_time_limit(conn, seconds):
            return list(conn.execute(statement).fetchall())
    except DBAPIError as exc:
        if limits.is_timeout(exc):
            raise PageFailed(f"This page took longer than {seconds:g} seconds and was stopped. Narrow it down with "
                             f"a filter, or sort by an indexed column.") from None
        raise PageFailed(f"The database could not show this page: {safe_message(exc)}") from None


def _count(info: TableInfo, plan: _Plan, sa_table: Any) -> RowCount | None:
    if not plan.conditions:
        return counts.row_counts(info.connection, info.schema).get(info.name)
    statement = select(*info.key_columns(sa_table) or [sa_table.c[plan.visible[0].name]]).where(
        and_(*plan.conditions))
    try:
        with get_engine(info.connection).connect() as conn, \
                limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
            return counts.bounded_count(conn, statement, FILTERED_COUNT_LIMIT)
    except DBAPIError:
        return None  # the page itself reports the problem, if there is one


def browse(info: TableInfo, views: Mapping[str, ColumnView], params: BrowseParams,
           linkable: Mapping[str, Any]) -> Page:
    """The page ``params`` asks for. ``views``: the user's view of every column; ``linkable``: column name ->
    foreign key, for the foreign keys whose referred table the user may open."""
    sa_table = info.sa_table()
    plan = _plan(info, views, params, sa_table)
    page = Page(columns=plan.visible, views=views, sort=plan.sort.name if plan.sort else None,
                descending=plan.descending, errors=plan.errors, notices=plan.notices)
    if info.key_kind == KeyKind.NONE:
        _offset_page(info, plan, params, sa_table, page, views)
    else:
        _keyset_page(info, plan, params, sa_table, page, views, linkable)
    page.filtered = bool(plan.conditions)
    if page.filtered and page.is_first and page.is_last and not page.errors:
        page.count = RowCount(len(page.rows))  # everything matching is on this page: no second scan
    else:
        page.count = _count(info, plan, sa_table)
    return page


def _shortened(info: TableInfo, plan: _Plan, views: Mapping[str, ColumnView], linkable: Mapping[str, Any]) -> set[str]:
    """Visible text and binary columns read as a preview (start and length) instead of whole: all but the
    key, the sort column and foreign keys, whose full values pages and links need."""
    keep = {*info.key, *linkable, plan.sort.name if plan.sort else None}
    return {c.name for c in plan.visible if c.kind in ("text", "binary") and c.name not in keep
            and views[c.name].mode == ColumnMode.VISIBLE}


def _preview_exprs(info: TableInfo, column: ColumnInfo, target: Any) -> list[Any]:
    if column.kind == "binary":
        return [func.length(target)]
    if info.dialect == "postgresql":
        target = cast(target, String)  # enums and domains have no substr() of their own
    length = func.char_length(target) if info.dialect == "mysql" else func.length(target)
    return [func.substr(target, 1, TRUNCATE_AT + 1), length]


def _selected(info: TableInfo, plan: _Plan, sa_table: Any, shortened: set[str]) -> tuple[list[Any], list[int]]:
    """Columns to select (visible ones first, previews as extra columns at the end, then key columns the
    user cannot see) and the key's positions."""
    names = [c.name for c in plan.visible]
    exprs: list[Any] = [literal(None) if n in shortened else sa_table.c[n] for n in names]
    for column in plan.visible:
        if column.name in shortened:
            exprs += [e.label(f"_bastion_preview_{len(exprs)}")
                      for e in _preview_exprs(info, column, sa_table.c[column.name])]
    positions = []
    for i, name in enumerate(info.key):
        if name in names and not info.key_is_pseudo:
            positions.append(names.index(name))
        else:
            positions.append(len(exprs))
            exprs.append(info.key_columns(sa_table)[i].label(f"_bastion_key_{i}"))
    return exprs, positions


def _with_previews(plan: _Plan, shortened: set[str], row: Sequence[Any]) -> list[Any]:
    """The row's visible values, a Preview in place of each shortened column."""
    values = list(row[: len(plan.visible)])
    extra = len(plan.visible)
    for i, column in enumerate(plan.visible):
        if column.name not in shortened:
            continue
        if column.kind == "binary":
            length = row[extra]
            values[i] = None if length is None else Preview(None, int(length))
            extra += 1
        else:
            prefix, length = row[extra], row[extra + 1]
            if prefix is None:
                values[i] = None
            elif isinstance(prefix, bytes | bytearray | memoryview):  # SQLite: a BLOB in a text column
                values[i] = Preview(None, int(length))
            else:
                values[i] = Preview(str(prefix), int(length))
            extra += 2
    return values


def _cursor_values(info: TableInfo, plan: _Plan, token: str | None, purpose: str, page: Page) -> list[Any] | None:
    if token is None:
        return None
    try:
        payload = tokens.unseal(purpose, token)
    except tokens.BadToken:
        payload = None
    expected = [info.connection.pk, info.schema, info.name, plan.sort.name if plan.sort else None, plan.descending,
                list(info.key)]
    width = len(info.key) + (plan.sort is not None)
    if not isinstance(payload, list) or len(payload) != 7 or payload[:6] != expected \
            or not isinstance(payload[6], list) or len(payload[6]) != width:
        page.errors.append("That page link is not valid for this view (it may be old, or the sort changed); "
                           "showing the first page.")
        return None
    return payload[6]


def _keyset_page(info: TableInfo, plan: _Plan, params: BrowseParams, sa_table: Any, page: Page,
                 views: Mapping[str, ColumnView], linkable: Mapping[str, Any]) -> None:
    shortened = _shortened(info, plan, views, linkable)
    exprs, key_positions = _selected(info, plan, sa_table, shortened)
    key_columns = info.key_columns(sa_table)
    sort_expr = sa_table.c[plan.sort.name] if plan.sort is not None else None
    sort_position = [c.name for c in plan.visible].index(plan.sort.name) if plan.sort is not None else None
    order = ([sort_expr] if sort_expr is not None else []) + key_columns

    after = _cursor_values(info, plan, params.after, "after", page)
    before = _cursor_values(info, plan, params.before, "before", page) if after is None else None
    reverse = before is not None or (params.last and after is None and before is None)
    descending = plan.descending != reverse
    conditions = list(plan.conditions)
    seek_from = after if after is not None else before
    if seek_from is not None:
        conditions.append(keyset.seek_after(sort_expr, bool(plan.sort and plan.sort.nullable), key_columns,
                                            seek_from, descending, info.dialect))
    statement = select(*exprs).select_from(sa_table).where(*conditions) \
        .order_by(*keyset.order_by(order, descending)).limit(params.size + 1)
    try:
        rows = _run(info, statement)
    except PageFailed as exc:
        page.errors.append(str(exc))
        return
    more = len(rows) > params.size
    rows = rows[: params.size]
    if reverse:
        rows.reverse()
        page.is_first, page.is_last = not more, before is None  # before a row, or the table's last page
    else:
        page.is_first, page.is_last = after is None, not more

    def position_values(row: Sequence[Any]) -> list[Any]:
        keys = [row[p] for p in key_positions]
        return [row[sort_position], *keys] if sort_position is not None else keys

    names = [c.name for c in plan.visible]
    for row in rows:
        values = _with_previews(plan, shortened, row)
        shown = dict(zip(names, values, strict=True))
        token = own_row_token(info, [row[p] for p in key_positions], row_digest(shown, plan.visible))
        page.rows.append(Row(token, _masked_cells(plan.visible, views, values),
                             _fk_links(info, plan.visible, views, linkable, values)))
    def cursor(purpose: str, row: Sequence[Any]) -> str:
        return cursor_token(purpose, info.connection.pk, info.schema, info.name,
                            plan.sort.name if plan.sort else None, plan.descending, info.key, position_values(row))

    if rows and not page.is_last:
        page.next_after = cursor("after", rows[-1])
    if rows and not page.is_first:
        page.prev_before = cursor("before", rows[0])


def _offset_page(info: TableInfo, plan: _Plan, params: BrowseParams, sa_table: Any, page: Page,
                 views: Mapping[str, ColumnView]) -> None:
    shortened = _shortened(info, plan, views, {})
    exprs, _positions = _selected(info, plan, sa_table, shortened)
    statement = select(*exprs).select_from(sa_table).where(*plan.conditions)
    if plan.sort is not None:
        statement = statement.order_by(*keyset.order_by([sa_table.c[plan.sort.name]], plan.descending))
    statement = statement.limit(params.size + 1).offset(params.offset)
    page.offset = params.offset
    try:
        rows = _run(info, statement)
    except PageFailed as exc:
        page.errors.append(str(exc))
        return
    more = len(rows) > params.size
    page.is_first = params.offset == 0
    page.is_last = not more or params.offset + params.size > MAX_OFFSET
    page.rows = [Row(None, _masked_cells(plan.visible, views, _with_previews(plan, shortened, row)),
                     (None,) * len(plan.visible)) for row in rows[: params.size]]


@dataclass(frozen=True)
class Export:
    """Every row of a table view (its filters, search and sort; no paging): what an export writes."""

    columns: list[ColumnInfo]  # the columns the user sees, masked ones included; hidden ones never
    statement: Any  # SELECT of those columns, in the view's order (then the row key), or None with errors
    errors: list[str]
    filtered: bool


def export_statement(info: TableInfo, views: Mapping[str, ColumnView], params: BrowseParams) -> Export:
    """The SELECT an export of the view ``params`` describes runs (T31: hidden columns are not selected)."""
    sa_table = info.sa_table()
    plan = _plan(info, views, params, sa_table)
    if plan.errors:
        return Export(plan.visible, None, plan.errors, bool(plan.conditions))
    sort = sa_table.c[plan.sort.name] if plan.sort is not None else None
    order = ([sort] if sort is not None else []) + ([] if info.key_kind == KeyKind.NONE
                                                    else info.key_columns(sa_table))
    statement = select(*(sa_table.c[c.name] for c in plan.visible)).select_from(sa_table).where(*plan.conditions)
    if order:
        statement = statement.order_by(*(expr.desc() if plan.descending else expr.asc() for expr in order))
    return Export(plan.visible, statement, [], bool(plan.conditions))
