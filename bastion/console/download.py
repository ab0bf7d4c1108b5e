"""Downloading one console result as CSV or JSON, streamed as it is read (constant memory).

The statement runs before the response starts, so an error it raises at once
gets a normal page; the rows are then streamed (bastion.transfer.streams). One
audit event per download records rows, bytes and outcome (T33).
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.text import slugify

from bastion.access.models import Action
from bastion.audit.services import record
from bastion.console.analysis import Kind, Statement
from bastion.console.guards import guarded_transaction
from bastion.console.runner import Plan, console_connection, sqlite_policy
from bastion.transfer import formats
from bastion.transfer.streams import RowStream, attachment

FORMATS = {fmt: formats.MEDIA_TYPES[fmt] for fmt in ("csv", "json")}


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


class ResultStream(RowStream):
    """A console result's download; its one audit event says what ran and how much left (T33)."""

    def __init__(self, request: HttpRequest, plan: Plan, statement: Statement, fmt: str,
                 stack: contextlib.ExitStack, cursor: Any, columns: list[str]) -> None:
        super().__init__(request, fmt, stack, cursor, columns, formats.writer(fmt))
        self.plan, self.statement = plan, statement

    def finished(self, elapsed_ms: float) -> None:
        record("console.download", request=self.request, target=self.plan.connection.name,
               outcome=self.outcome, details={
                   "connection_id": self.plan.connection.pk, "statement": self.statement.text[:10_000],
                   "format": self.fmt, "tables": sorted(str(t) for t in self.statement.reads),
                   "rows": self.rows, "bytes": self.bytes, "elapsed_ms": elapsed_ms, "message": self.message})


def stream_result(request: HttpRequest, plan: Plan, statement: Statement, fmt: str) -> StreamingHttpResponse:
    """The response that streams ``statement``'s rows; raises DBAPIError when the statement fails at once."""
    stack = contextlib.ExitStack()
    try:
        conn = stack.enter_context(console_connection(plan.connection))
        stack.enter_context(guarded_transaction(conn, read_only=True, timeout=settings.CONSOLE_DOWNLOAD_TIMEOUT,
                                                sqlite_policy=sqlite_policy(conn, plan.grants)))
        cursor = conn.execution_options(stream_results=True, max_row_buffer=ResultStream.batch_rows).exec_driver_sql(
            statement.text)
        stack.callback(cursor.close)
        columns = list(cursor.keys())
    except BaseException:
        stack.close()
        raise
    body = ResultStream(request, plan, statement, fmt, stack, cursor, columns)
    return attachment(body, f"{slugify(plan.connection.name) or 'query'}-result")
