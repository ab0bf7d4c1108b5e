"""Downloading one console result as CSV or JSON, streamed as it is read (constant memory).

The statement runs before the response starts, so an error it raises at once
gets a normal page. Rows are then read from a streaming cursor in batches and
written out as they come; when the client goes away the server closes the
iterator, which closes the cursor and the connection: no work goes on for
nobody. An error in the middle aborts the transfer (the file is visibly
incomplete) instead of ending it as if the result were complete. One audit
event per download records rows, bytes and outcome (T33).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from sqlalchemy.exc import DBAPIError

from bastion.access.models import Action
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections.limits import is_timeout
from bastion.console.analysis import Kind, Statement
from bastion.console.guards import guarded_transaction
from bastion.console.runner import Plan, console_connection, sqlite_policy
from bastion.transfer import formats

FORMATS = {fmt: formats.MEDIA_TYPES[fmt] for fmt in ("csv", "json")}
BATCH_ROWS = 1000


def download_refusal(plan: Plan, statement: Statement) -> str | None:
    """Why this statement's result may not be downloaded; None when it may (export grant on what it reads)."""
    if statement.kind != Kind.READ or not statement.returns_rows:
        return "Only queries that return rows can be downloaded."
    tables = {*statement.reads, *statement.via_views}
    if not tables:
        return None if plan.grants.may(Action.EXPORT) else "You do not hold the export grant on this database."
    for table in sorted(tables):
        if not plan.grants.may(Action.EXPORT, table):
            return f'You do not hold the export grant on "{table}".'
    return None


class ResultStream:
    """A download's body. Closing it (after the last chunk, when the client goes away, or when the response
    is dropped before its first chunk: Django closes what it was given) closes the cursor and the
    connection and writes the download's one audit event."""

    def __init__(self, request: HttpRequest, plan: Plan, statement: Statement, fmt: str,
                 stack: contextlib.ExitStack, cursor: Any, columns: list[str]) -> None:
        self.request, self.plan, self.statement, self.fmt = request, plan, statement, fmt
        self.stack, self.cursor, self.columns = stack, cursor, columns
        self.rows = self.bytes = 0
        self.outcome, self.message = Outcome.FAILURE, "the client went away before the end"
        self.started = time.monotonic()
        self.closed = False

    def _batches(self) -> Iterator[Sequence[Any]]:
        while batch := self.cursor.fetchmany(BATCH_ROWS):
            self.rows += len(batch)
            yield batch

    def __iter__(self) -> Iterator[bytes]:
        encode = formats.writer(self.fmt)
        try:
            for chunk in encode(self.columns, self._batches()):
                self.bytes += len(chunk)
                yield chunk
            self.outcome, self.message = Outcome.SUCCESS, ""
        except DBAPIError as exc:
            self.message = ("the time limit stopped the statement" if is_timeout(exc)
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
            record("console.download", request=self.request, target=self.plan.connection.name,
                   outcome=self.outcome, details={
                       "connection_id": self.plan.connection.pk, "statement": self.statement.text[:10_000],
                       "format": self.fmt, "tables": sorted(str(t) for t in self.statement.reads),
                       "rows": self.rows, "bytes": self.bytes,
                       "elapsed_ms": round((time.monotonic() - self.started) * 1000, 1), "message": self.message})


def stream_result(request: HttpRequest, plan: Plan, statement: Statement, fmt: str) -> StreamingHttpResponse:
    """The response that streams ``statement``'s rows; raises DBAPIError when the statement fails at once."""
    stack = contextlib.ExitStack()
    try:
        conn = stack.enter_context(console_connection(plan.connection))
        stack.enter_context(guarded_transaction(conn, read_only=True, timeout=settings.CONSOLE_DOWNLOAD_TIMEOUT,
                                                sqlite_policy=sqlite_policy(conn, plan.grants)))
        cursor = conn.execution_options(stream_results=True, max_row_buffer=BATCH_ROWS).exec_driver_sql(
            statement.text)
        stack.callback(cursor.close)
        columns = list(cursor.keys())
    except BaseException:
        stack.close()
        raise
    body = ResultStream(request, plan, statement, fmt, stack, cursor, columns)
    response = StreamingHttpResponse(body, content_type=FORMATS[fmt])
    name = f"{slugify(plan.connection.name) or 'query'}-result-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["X-Content-Type-Options"] = "nosniff"
    return response
