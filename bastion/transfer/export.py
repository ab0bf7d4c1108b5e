"""Exporting a table, or the filtered and sorted view of it the user is looking at (T27, T31, T33, T36).

The file is streamed as the rows are read (streams.RowStream: constant memory, work stops
when the client goes away). Hidden columns are never selected; masked ones are written
masked. Each export writes one audit event with its rows, bytes and outcome; one larger
than BASTION_EXPORT_EGRESS_MB is flagged as egress.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.text import slugify
from sqlalchemy import MetaData, Table, literal_column, select
from sqlalchemy.exc import DBAPIError

from bastion.access.masking import mask_value
from bastion.access.models import Action, ColumnMode
from bastion.access.policy import ColumnView, Resource, check, visible_tables
from bastion.audit.services import record
from bastion.connections import limits
from bastion.connections.counts import RowCount, bounded_count
from bastion.connections.engines import get_engine
from bastion.explorer.browse import BrowseParams, Export, export_statement
from bastion.explorer.schema import TableInfo
from bastion.transfer import formats
from bastion.transfer.streams import RowStream, attachment

EXPORTED = "export.table"
COUNT_SECONDS = 2.0


class ExportRefused(Exception):
    """The export cannot run as asked; ``str()`` says why (a filter the table cannot take, say)."""


def _slots_key(user: Any) -> str:
    return f"bastion:exports-running:{user.pk}"


def take_slot(user: Any) -> bool:
    """Count one more running export for ``user``; False (nothing counted) when BASTION_EXPORT_MAX_RUNNING run
    already: each holds a database connection while the client reads (T28). The count expires with the export
    time limit, so a process that died cannot keep a slot."""
    key = _slots_key(user)
    cache.add(key, 0, timeout=settings.EXPORT_TIMEOUT + 60)
    try:
        running = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.EXPORT_TIMEOUT + 60)
        running = 1
    if running > settings.EXPORT_MAX_RUNNING:
        release_slot(user)
        return False
    return True


def release_slot(user: Any) -> None:
    with contextlib.suppress(ValueError):
        cache.decr(_slots_key(user))


def may_export(user: Any, info: TableInfo) -> bool:
    return check(user, Action.EXPORT, Resource(info.connection.pk, info.schema, info.name)) and bool(
        visible_tables(user, info.connection.pk, info.schema, [info.name]))


def prepare(info: TableInfo, views: Mapping[str, ColumnView], params: BrowseParams) -> Export:
    """The export of the view ``params`` describes; ExportRefused when the view has errors."""
    export = export_statement(info, views, params)
    if export.errors:
        raise ExportRefused(" ".join(export.errors))
    if not export.columns:
        raise ExportRefused("Your role shows no column of this table, so there is nothing to export.")
    return export


def rows_to_export(info: TableInfo, export: Export, at_most: int | None = None) -> RowCount | None:
    """Rows the export would write, up to ``at_most`` (BASTION_EXPORT_REAUTH_ROWS) + 1 (None: not counted in
    time)."""
    with get_engine(info.connection).connect() as conn:
        try:
            with limits.statement_time_limit(conn, COUNT_SECONDS):
                rows = select(literal_column("1")).select_from(export.statement.order_by(None).subquery())
                return bounded_count(conn, rows, settings.EXPORT_REAUTH_ROWS if at_most is None else at_most)
        except DBAPIError:
            return None


def needs_reauthentication(info: TableInfo, export: Export) -> bool:
    """An export of more than BASTION_EXPORT_REAUTH_ROWS rows (or of too many to count in time) asks for the
    password again: it is the shape of data being carried off. Counted on the rows the export would write, so a
    filter that matches everything does not get around it."""
    count = rows_to_export(info, export)
    return count is None or count.more_than or count.value > settings.EXPORT_REAUTH_ROWS


def table_label(info: TableInfo) -> str:
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def open_cursor(info: TableInfo, export: Export) -> tuple[contextlib.ExitStack, Any, Any]:
    """The export's statement running on a streaming cursor, in a transaction under BASTION_EXPORT_TIMEOUT:
    (the stack that closes it all, the cursor, the dialect). Raises DBAPIError when it fails at once."""
    stack = contextlib.ExitStack()
    try:
        conn = stack.enter_context(get_engine(info.connection).connect())
        stack.enter_context(conn.begin())  # a server-side cursor lives in a transaction; closing rolls it back
        stack.enter_context(limits.statement_time_limit(conn, settings.EXPORT_TIMEOUT))
        if conn.dialect.name == "sqlite":
            cursor = _sqlite_cursor(conn, export)
        else:
            cursor = conn.execution_options(stream_results=True, max_row_buffer=ExportStream.batch_rows).execute(
                export.statement)
        stack.callback(cursor.close)
    except BaseException:
        stack.close()
        raise
    return stack, cursor, conn.dialect


def _sqlite_cursor(conn: Any, export: Export) -> Any:
    """The export's statement on SQLite's own cursor, which reads rows as they are fetched: the statement and
    its bound values as SQLAlchemy compiles them for the connection (expanded IN lists, bind processors), and
    rows as the driver gives them (the export's columns have no result processors), a third faster than
    SQLAlchemy's rows. A driver error is raised as SQLAlchemy's DBAPIError, like any other."""
    state = export.statement.compile(dialect=conn.dialect).construct_expanded_state()
    processors = state.processors
    values = [processors[name](value) if name in processors else value
              for name, value in zip(state.positiontup or (), state.positional_parameters, strict=True)]
    rows = _DriverRows(conn.connection.dbapi_connection.cursor(), state.statement)
    try:
        rows.run(rows.cursor.execute, state.statement, values)
    except DBAPIError:
        rows.close()
        raise
    return rows


class _DriverRows:
    """A driver cursor whose errors (the time limit's interrupt among them) come out as SQLAlchemy's."""

    def __init__(self, cursor: Any, statement: str) -> None:
        self.cursor, self.statement = cursor, statement

    def run(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except sqlite3.Error as exc:
            raise DBAPIError(self.statement, None, exc) from exc

    def fetchmany(self, size: int) -> list[Any]:
        return self.run(self.cursor.fetchmany, size)

    def close(self) -> None:
        self.cursor.close()


class ExportStream(RowStream):
    """An export's body: masked columns masked; its one audit event at the end (and, streamed to a browser, the
    user's slot given back). ``job``: the background job writing it to a file, named in the event."""

    batch_rows = 50  # the first batch small: 50 wide rows (a megabyte each) is already 50 MB in memory (T28)
    what = "export"

    def __init__(self, request: HttpRequest | None, info: TableInfo, export: Export,
                 views: Mapping[str, ColumnView], fmt: str, opened: tuple[contextlib.ExitStack, Any, Any], *,
                 actor: Any = None, job: Any = None) -> None:
        stack, cursor, dialect = opened
        table = Table(info.name, MetaData(), schema=info.schema, quote=True, quote_schema=True)
        super().__init__(request, fmt, stack, cursor, [c.name for c in export.columns],
                         formats.writer(fmt, table, dialect))
        self.info, self.export, self.actor, self.job = info, export, actor, job
        self.masks = [view.mask_rule if view.mode == ColumnMode.MASKED else None
                      for view in (views[c.name] for c in export.columns)]

    def rows_of(self, batch: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        if not any(self.masks):
            return batch
        return [[mask_value(v, rule) if rule else v for v, rule in zip(row, self.masks, strict=True)]
                for row in batch]

    def finished(self, elapsed_ms: float) -> None:
        if self.request is not None:
            release_slot(self.request.user)
        info = self.info
        record(EXPORTED, request=self.request, actor=self.actor, target=table_label(info),
               outcome=self.outcome, details={
                   "connection_id": info.connection.pk, "schema": info.schema, "table": info.name,
                   "format": self.fmt, "columns": self.columns, "filtered": self.export.filtered,
                   "rows": self.rows, "bytes": self.bytes, "egress": self.bytes > settings.EXPORT_EGRESS_BYTES,
                   "elapsed_ms": elapsed_ms, "message": self.message,
                   **({"job": str(self.job.pk)} if self.job is not None else {})})


def stream(request: HttpRequest, info: TableInfo, export: Export, views: Mapping[str, ColumnView],
           fmt: str) -> StreamingHttpResponse:
    """The response that streams the export, in one of the user's slots (take_slot, released when the stream
    closes); raises DBAPIError when the statement fails at once."""
    try:
        opened = open_cursor(info, export)
    except BaseException:
        release_slot(request.user)
        raise
    body = ExportStream(request, info, export, views, fmt, opened)
    return attachment(body, f"{slugify(info.connection.name) or 'database'}-{slugify(info.name) or 'table'}")
