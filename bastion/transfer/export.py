"""Exporting a table, or the filtered and sorted view of it the user is looking at (T27, T31, T33, T36).

The rows are read from a streaming cursor in batches and written out as they come
(formats.py): memory stays constant whatever the table's size, the first bytes leave at
once, and when the client goes away the server closes the stream, which closes the
cursor and the connection: no work goes on for nobody. Hidden columns are never selected;
masked ones are written masked. An error in the middle aborts the transfer (the file is
visibly incomplete) instead of ending it as if complete. Each export writes one audit
event with its rows, bytes and outcome; one larger than BASTION_EXPORT_EGRESS_MB is
flagged as egress.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from sqlalchemy import MetaData, Table, literal_column, select
from sqlalchemy.exc import DBAPIError

from bastion.access.masking import mask_value
from bastion.access.models import Action, ColumnMode
from bastion.access.policy import ColumnView, Resource, check, visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits
from bastion.connections.counts import RowCount, bounded_count
from bastion.connections.engines import get_engine
from bastion.explorer.browse import BrowseParams, Export, export_statement
from bastion.explorer.schema import TableInfo
from bastion.transfer import formats

EXPORTED = "export.table"
BATCH_ROWS = 50  # small: 50 wide rows (a megabyte each) is already 50 MB in memory (T28)
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


def rows_to_export(info: TableInfo, export: Export) -> RowCount | None:
    """Rows the export would write, up to BASTION_EXPORT_REAUTH_ROWS + 1 (None: not counted in time)."""
    with get_engine(info.connection).connect() as conn:
        try:
            with limits.statement_time_limit(conn, COUNT_SECONDS):
                rows = select(literal_column("1")).select_from(export.statement.order_by(None).subquery())
                return bounded_count(conn, rows, settings.EXPORT_REAUTH_ROWS)
        except DBAPIError:
            return None


def needs_reauthentication(info: TableInfo, export: Export) -> bool:
    """An export of more than BASTION_EXPORT_REAUTH_ROWS rows (or of too many to count in time) asks for the
    password again: it is the shape of data being carried off. Counted on the rows the export would write, so a
    filter that matches everything does not get around it."""
    count = rows_to_export(info, export)
    return count is None or count.more_than or count.value > settings.EXPORT_REAUTH_ROWS


class ExportStream:
    """An export's body. Closing it (after the last chunk, when the client goes away, or when the response is
    dropped before its first chunk) closes the cursor and the connection and writes the one audit event."""

    def __init__(self, request: HttpRequest, info: TableInfo, export: Export, views: Mapping[str, ColumnView],
                 fmt: str, stack: contextlib.ExitStack, cursor: Any, dialect: Any) -> None:
        self.request, self.info, self.export, self.views, self.fmt = request, info, export, views, fmt
        self.stack, self.cursor, self.dialect = stack, cursor, dialect
        self.rows = self.bytes = 0
        self.outcome, self.message = Outcome.FAILURE, "the client went away before the end"
        self.started = time.monotonic()
        self.closed = False

    def _masks(self) -> list[Any]:
        return [view.mask_rule if view.mode == ColumnMode.MASKED else None
                for view in (self.views[c.name] for c in self.export.columns)]

    def _batches(self) -> Iterator[Sequence[Sequence[Any]]]:
        masks = self._masks()
        while batch := self.cursor.fetchmany(BATCH_ROWS):
            self.rows += len(batch)
            yield [[mask_value(v, rule) if rule else v for v, rule in zip(row, masks, strict=True)] for row in batch]

    def __iter__(self) -> Iterator[bytes]:
        table = Table(self.info.name, MetaData(), schema=self.info.schema, quote=True, quote_schema=True)
        write = formats.writer(self.fmt, table, self.dialect)
        try:
            for chunk in write([c.name for c in self.export.columns], self._batches()):
                self.bytes += len(chunk)
                yield chunk
            self.outcome, self.message = Outcome.SUCCESS, ""
        except DBAPIError as exc:
            self.message = ("the time limit stopped the export" if limits.is_timeout(exc)
                            else "the database reported an error")
            raise
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.stack.close()
        finally:
            release_slot(self.request.user)
            info = self.info
            record(EXPORTED, request=self.request,
                   target=f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}",
                   outcome=self.outcome, details={
                       "connection_id": info.connection.pk, "schema": info.schema, "table": info.name,
                       "format": self.fmt, "columns": [c.name for c in self.export.columns],
                       "filtered": self.export.filtered, "rows": self.rows, "bytes": self.bytes,
                       "egress": self.bytes > settings.EXPORT_EGRESS_BYTES,
                       "elapsed_ms": round((time.monotonic() - self.started) * 1000, 1), "message": self.message})


def stream(request: HttpRequest, info: TableInfo, export: Export, views: Mapping[str, ColumnView],
           fmt: str) -> StreamingHttpResponse:
    """The response that streams the export, in one of the user's slots (take_slot, released when the stream
    closes); raises DBAPIError when the statement fails at once."""
    stack = contextlib.ExitStack()
    try:
        conn = stack.enter_context(get_engine(info.connection).connect())
        stack.enter_context(conn.begin())  # a server-side cursor lives in a transaction; closing rolls it back
        stack.enter_context(limits.statement_time_limit(conn, settings.EXPORT_TIMEOUT))
        cursor = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS).execute(export.statement)
        stack.callback(cursor.close)
    except BaseException:
        stack.close()
        release_slot(request.user)
        raise
    body = ExportStream(request, info, export, views, fmt, stack, cursor, conn.dialect)
    response = StreamingHttpResponse(body, content_type=formats.MEDIA_TYPES[fmt])
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    name = f"{slugify(info.connection.name) or 'database'}-{slugify(info.name) or 'table'}-{stamp}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["X-Content-Type-Options"] = "nosniff"
    return response
