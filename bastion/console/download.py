"""Downloading one console result as CSV, JSON Lines, JSON or SQL INSERT statements, streamed as it is read
(constant memory).

The statement runs before the response starts, so an error it raises at once
gets a normal page; the rows are then streamed (bastion.transfer.streams). One
audit event per download records the format, rows, bytes and outcome (T33).
SQL statements insert into the one table the query reads, else into "query_result".
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.text import slugify
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Dialect

from bastion.access.models import Action
from bastion.audit.services import record
from bastion.console.analysis import Kind, Statement
from bastion.console.guards import guarded_transaction
from bastion.console.runner import Plan, console_connection, sqlite_policy
from bastion.transfer import formats
from bastion.transfer.streams import RowStream, Writer, attachment

FORMATS = {fmt: formats.MEDIA_TYPES[fmt] for fmt in ("csv", "jsonl", "json", "sql")}
QUERY_RESULT = "query_result"  # the table SQL statements insert into when the query reads no single table


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


def insert_table(plan: Plan, statement: Statement) -> Table:
    """Where the SQL statements of a download insert: the one table the statement reads (schema and all), else
    "query_result" (a join, a view, no table at all: no table of the database has the result's shape)."""
    if len(statement.reads) == 1 and not statement.via_views:
        [ref] = statement.reads
        entry = plan.catalog.lookup(ref.schema, ref.name)
        if entry is not None and entry.view_sql is None:
            return Table(ref.name, MetaData(), schema=ref.schema, quote=True, quote_schema=True)
    return Table(QUERY_RESULT, MetaData(), quote=True)


def insert_columns(columns: list[str]) -> list[str]:
    """The column list of the INSERT statements: a blank name (MariaDB's SELECT '') becomes column_<n>, and a
    repeated one gets _2, _3 ... as JSON keys do; an INSERT names each column once."""
    return formats.unique_keys([name or f"column_{n}" for n, name in enumerate(columns, start=1)])


def result_writer(fmt: str, plan: Plan, statement: Statement, dialect: Dialect) -> Writer:
    """The chunk writer of ``fmt``; SQL literals from ``dialect``, the connection's own (MySQL's backslashes)."""
    if fmt != "sql":
        return formats.writer(fmt)
    write = formats.writer(fmt, insert_table(plan, statement), dialect)
    return lambda columns, batches: write(insert_columns(list(columns)), batches)


class ResultStream(RowStream):
    """A console result's download; its one audit event says what ran, in which format and how much left (T33)."""

    def __init__(self, request: HttpRequest, plan: Plan, statement: Statement, fmt: str,
                 stack: contextlib.ExitStack, cursor: Any, columns: list[str], write: Writer) -> None:
        super().__init__(request, fmt, stack, cursor, columns, write)
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
        write = result_writer(fmt, plan, statement, conn.dialect)
    except BaseException:
        stack.close()
        raise
    body = ResultStream(request, plan, statement, fmt, stack, cursor, columns, write)
    return attachment(body, f"{slugify(plan.connection.name) or 'query'}-result")
