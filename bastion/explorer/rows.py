"""One row: finding it by its token, showing its values, and the rows that point at it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from sqlalchemy import and_, select

from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView, column_modes, visible_tables
from bastion.connections import counts, limits, reflection
from bastion.connections.counts import RowCount
from bastion.connections.engines import get_engine
from bastion.explorer.links import filtered_table_url, page_url
from bastion.explorer.rowkeys import own_row_token, read_row_token, row_token
from bastion.explorer.schema import ColumnInfo, ForeignKey, TableInfo, resolve_table
from bastion.explorer.values import Cell, as_text, bound, cell, is_binary, pretty_json

REFERENCED_BY_COUNT_LIMIT = 1000
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RowView:
    """A row as read for one user: clear values of the columns they may see (masked ones too, masked later)."""

    values: dict[str, Any]
    key_values: list[Any]
    token: str  # the canonical token (by the table's key), whatever token found the row


def find_row(info: TableInfo, views: Mapping[str, ColumnView], token: str) -> RowView | None:
    """The row a token names, or None (bad token, made for another table, or no such row)."""
    if not info.editable:
        return None
    key = read_row_token(info, views, token)
    if key is None:
        return None
    sa_table = info.sa_table()
    shown = [c.name for c in info.columns if views[c.name].mode != ColumnMode.HIDDEN]
    key_exprs = [col.label(f"_bastion_key_{i}") for i, col in enumerate(info.key_columns(sa_table))]
    where = [info.sa_column(sa_table, name) == bound(value, info.dialect)
             for name, value in zip(key.columns, key.values, strict=True)]
    statement = select(*(sa_table.c[n] for n in shown), *key_exprs).select_from(sa_table).where(and_(*where)).limit(2)
    with get_engine(info.connection).connect() as conn, \
            limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
        found = conn.execute(statement).fetchall()
    if len(found) != 1:
        return None
    data = found[0]
    key_values = list(data[len(shown):])
    return RowView(dict(zip(shown, data[: len(shown)], strict=True)), key_values, own_row_token(info, key_values))


@dataclass(frozen=True)
class Field:
    column: ColumnInfo
    cell: Cell
    pretty: str | None  # JSON shown indented
    link_url: str | None  # the referred row, for a foreign key value
    download_url: str | None  # the value as a file, for binary values


def row_fields(info: TableInfo, views: Mapping[str, ColumnView], linkable: Mapping[str, ForeignKey],
               found: RowView) -> list[Field]:
    """The row's values for its page: in full, JSON indented, foreign keys linked, binaries downloadable."""
    connection_id = info.connection.pk
    fields = []
    for column in info.columns:
        if column.name not in found.values:
            continue
        value = found.values[column.name]
        view = views[column.name]
        shown = cell(value, view, limit=None)
        masked = view.mode == ColumnMode.MASKED
        pretty = link_url = download_url = None
        if not masked and value is not None:
            if is_binary(value):
                download_url = page_url("download", connection_id, info.schema, info.name, k=found.token,
                                        c=column.name)
            else:
                pretty = as_text(value, pretty=True) if isinstance(value, dict | list) else pretty_json(shown.text)
            fk = linkable.get(column.name)
            if fk is not None:
                link_url = page_url("row", connection_id, fk.referred_schema, fk.referred_table,
                                    k=row_token(connection_id, fk.referred_schema, fk.referred_table,
                                                fk.referred_columns, [value]))
        fields.append(Field(column, shown, pretty, link_url, download_url))
    return fields


@dataclass(frozen=True)
class Referrer:
    """Rows of another table whose foreign key points at this row."""

    schema: str | None
    table: str
    columns: tuple[str, ...]
    count: RowCount | None
    url: str


def referenced_by(user: Any, info: TableInfo, views: Mapping[str, ColumnView], found: RowView) -> list[Referrer]:
    """Foreign keys pointing at this row from tables the user may see, with bounded counts of the rows."""
    if info.is_view:
        return []
    connection = info.connection
    result = []
    for fk in reflection.referencing_foreign_keys(connection, info.schema, info.name):
        referred = fk["referred_columns"]
        if any(views.get(c) is None or views[c].mode != ColumnMode.VISIBLE or c not in found.values
               for c in referred):
            continue  # the filter would carry a value the user may not see
        if not visible_tables(user, connection.pk, fk["schema"], [fk["table"]]):
            continue
        child_views = column_modes(user, connection.pk, fk["schema"], fk["table"], fk["constrained_columns"])
        if any(v.mode != ColumnMode.VISIBLE for v in child_views.values()):
            continue
        values = [found.values[c] for c in referred]
        child = resolve_table(connection, fk["schema"], fk["table"])
        child_table = child.sa_table()
        condition = and_(*(child_table.c[c] == bound(v, info.dialect)
                           for c, v in zip(fk["constrained_columns"], values, strict=True)))
        statement = select(child_table.c[fk["constrained_columns"][0]]).where(condition)
        with get_engine(connection).connect() as conn, \
                limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
            count = counts.bounded_count(conn, statement, REFERENCED_BY_COUNT_LIMIT)
        result.append(Referrer(fk["schema"], fk["table"], tuple(fk["constrained_columns"]), count,
                               filtered_table_url(connection.pk, fk["schema"], fk["table"],
                                                  fk["constrained_columns"], [as_text(v) for v in values])))
    return result


def as_attachment(info: TableInfo, column: str, value: Any) -> HttpResponse:
    """A value as a download that no browser renders inline (T03): attachment, octet-stream, nosniff."""
    data = bytes(value) if is_binary(value) else as_text(value).encode("utf-8")
    stem = _FILENAME_UNSAFE.sub("_", f"{info.name}-{column}").strip("._") or "value"
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{stem[:100]}.bin"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
