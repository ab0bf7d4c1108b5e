"""Running a console script: analyse, check every statement, then run them all in one guarded transaction.

Nothing runs unless every statement is allowed. The statements run in order in
one transaction; the first error stops the run and rolls everything back, so a
script either happens entirely or not at all (MySQL commits DDL by itself: the
page says so). Results are read from a streaming cursor: a page of rows is
fetched, the rest never leaves the database.

Each run gets a connection of its own that is closed afterwards instead of
going back to the pool, so nothing a user's statements leave in the session
(temporary tables, session variables, prepared statements, an unread result)
can reach another user.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import psycopg
from django.conf import settings
from sqlalchemy import Connection as SAConnection
from sqlalchemy import CursorResult
from sqlalchemy.exc import DBAPIError

from bastion.access.models import ColumnMode
from bastion.access.policy import VISIBLE
from bastion.connections import limits, reflection
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason
from bastion.connections.models import Connection
from bastion.console.analysis import AnalysisError, Kind, Statement, analyse, line_and_column
from bastion.console.authorize import refusal
from bastion.console.catalog import ReflectedCatalog
from bastion.console.guards import TransactionEnded, guarded_transaction, sqlite_grant_policy
from bastion.console.permissions import UserGrants
from bastion.explorer.changes import generic_reason, user_error_text
from bastion.explorer.values import Cell, as_text, cell, is_binary

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 100
SKIP_BATCH = 1000  # rows read and dropped at a time on the way to a later page


@dataclass(frozen=True)
class Problem:
    """Why a run did not happen or stopped: which statement, what to tell the user, and where."""

    message: str
    statement: int | None = None  # 1-based; None: the script as a whole
    line: int | None = None
    column: int | None = None
    timed_out: bool = False


@dataclass
class Plan:
    """A script analysed and checked for one user; ``problem`` set means nothing may run."""

    connection: Connection
    script: str
    statements: list[Statement]
    grants: UserGrants
    catalog: ReflectedCatalog
    problem: Problem | None

    @cached_property
    def read_only(self) -> bool:
        return all(s.kind == Kind.READ for s in self.statements)

    @property
    def tables(self) -> list[str]:
        names = {str(t) for s in self.statements for t in (*s.reads, *(w.table for w in s.writes),
                                                             *(d.table for d in s.ddl))}
        return sorted(names)


@dataclass
class Result:
    """What one statement gave: a page of rows, or a count of affected rows."""

    statement: Statement
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    has_next: bool = False
    capped: bool = False  # more rows exist than the console pages through
    cut_by_size: bool = False
    affected: int | None = None
    elapsed_ms: float = 0.0

    @property
    def returns_rows(self) -> bool:
        return bool(self.columns)

    @property
    def first_row(self) -> int:
        return (self.page - 1) * self.page_size + 1

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1


@dataclass
class Run:
    plan: Plan
    results: list[Result] = field(default_factory=list)
    problem: Problem | None = None
    committed: bool = False
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None and self.plan.problem is None


def plan_script(user: Any, connection: Connection, script: str) -> Plan:
    """Analyse ``script`` and check each statement for ``user``; runs nothing."""
    grants = UserGrants(user, connection.pk)
    catalog = ReflectedCatalog(connection)
    try:
        statements = analyse(script, catalog)
    except AnalysisError as exc:
        return Plan(connection, script, [], grants, catalog, Problem(str(exc)))
    if not statements:
        return Plan(connection, script, [], grants, catalog, Problem("There is no statement to run."))
    if len(statements) > settings.CONSOLE_MAX_STATEMENTS:
        return Plan(connection, script, [], grants, catalog, Problem(
            f"The script has {len(statements)} statements; the console runs at most "
            f"{settings.CONSOLE_MAX_STATEMENTS} at once."))
    for statement in statements:
        reason = refusal(statement, grants)
        if reason is not None:
            line, column = line_and_column(script, statement.start)
            return Plan(connection, script, statements, grants, catalog,
                        Problem(reason, statement.index, line, column))
    return Plan(connection, script, statements, grants, catalog, None)


def run_plan(plan: Plan, *, pages: Mapping[int, int] | None = None,
             page_size: int = DEFAULT_PAGE_SIZE) -> Run:
    """Run an allowed plan; ``pages`` picks the page shown of each statement's rows (default the first)."""
    run = Run(plan)
    if plan.problem is not None:
        return run
    started = time.monotonic()
    connection = plan.connection
    read_only = plan.read_only or not plan.grants.may_write_somewhere
    with console_connection(connection, value_limit=settings.CONSOLE_MAX_RESULT_BYTES) as conn:
        try:
            with guarded_transaction(conn, read_only=read_only, timeout=settings.CONSOLE_TIMEOUT,
                                     sqlite_policy=sqlite_policy(conn, plan.grants)):
                deadline = started + settings.CONSOLE_TIMEOUT
                for statement in plan.statements:
                    # The whole script shares one time limit: each statement gets what is left of it.
                    left = deadline - time.monotonic()
                    if left <= 0:
                        run.problem = _out_of_time(plan, statement)
                        break
                    with limits.statement_time_limit(conn, left):
                        run.results.append(_run_statement(conn, statement, (pages or {}).get(statement.index, 1),
                                                          page_size))
                if not read_only and run.problem is None:
                    conn.commit()
                    run.committed = True
        except DBAPIError as exc:
            failed = plan.statements[min(len(run.results), len(plan.statements) - 1)]  # or the commit
            run.problem = statement_problem(plan, exc, failed.index, shifted=failed.kind == Kind.READ)
            run.committed = False
        except TransactionEnded:
            run.problem = Problem("This statement ended the transaction Bastion runs the script in, so the run "
                                  "was stopped and rolled back.", len(run.results))
            run.committed = False
    if any(s.kind == Kind.DDL for s in plan.statements):
        reflection.invalidate(connection)  # MySQL commits DDL by itself, even in a run that then failed
    run.elapsed_ms = (time.monotonic() - started) * 1000
    return run


@contextlib.contextmanager
def console_connection(connection: Connection, *, value_limit: int | None = None) -> Iterator[SAConnection]:
    """A connection of its own for one run, closed (never pooled again) at the end.

    ``value_limit``: on SQLite, the largest text or blob a statement may make, so that zeroblob(1e9)
    fails in the engine instead of filling the server's memory (the limit dies with the connection).
    """
    conn = get_engine(connection).connect().execution_options(no_parameters=True)
    raw = conn.connection.dbapi_connection
    if value_limit is not None and isinstance(raw, sqlite3.Connection):
        raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, value_limit)
    try:
        yield conn
    finally:
        try:
            conn.invalidate()
        finally:
            conn.close()


def sqlite_policy(conn: SAConnection, grants: UserGrants) -> Any:
    if conn.dialect.name != "sqlite":
        return None
    triggers = frozenset(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars())
    conn.rollback()  # the guarded transaction must start afresh
    return sqlite_grant_policy(grants, trigger_names=triggers)


def _run_statement(conn: SAConnection, statement: Statement, page: int, page_size: int) -> Result:
    started = time.monotonic()
    result = Result(statement, page=max(1, page), page_size=page_size)
    streaming = statement.kind == Kind.READ  # PostgreSQL declares a cursor: only for queries
    cursor = conn.execution_options(stream_results=streaming, max_row_buffer=page_size).exec_driver_sql(
        statement.text)
    try:
        if cursor.returns_rows:
            result.columns = list(cursor.keys())
            _read_page(cursor, result)
        else:
            result.affected = cursor.rowcount if cursor.rowcount >= 0 else None
    finally:
        cursor.close()
    result.elapsed_ms = (time.monotonic() - started) * 1000
    return result


def _read_page(cursor: CursorResult[Any], result: Result) -> None:
    """Fill ``result`` with its page of rows: skip the pages before it, stop at the row and size limits."""
    max_rows = settings.CONSOLE_MAX_ROWS
    last_page = max(1, -(-max_rows // result.page_size))
    result.page = min(result.page, last_page)
    to_skip = (result.page - 1) * result.page_size
    while to_skip > 0:
        skipped = cursor.fetchmany(min(SKIP_BATCH, to_skip))
        if not skipped:
            break
        to_skip -= len(skipped)
    if to_skip > 0:  # the result is shorter than the page asked for: show its last page instead
        result.page = 1
        return
    take = min(result.page_size, max_rows - (result.page - 1) * result.page_size)
    budget = settings.CONSOLE_MAX_RESULT_BYTES
    for row in _rows(cursor, take):
        budget -= sum(_size(v) for v in row)
        if budget < 0 and result.rows:
            result.cut_by_size = True
            return
        result.rows.append([cell(v, VISIBLE) for v in row])
    more = cursor.fetchone() is not None
    at_limit = result.page * result.page_size >= max_rows
    result.has_next = more and not at_limit
    result.capped = more and at_limit


def _rows(cursor: CursorResult[Any], count: int) -> Iterator[Any]:
    while count > 0:
        batch = cursor.fetchmany(min(count, 100))
        if not batch:
            return
        count -= len(batch)
        yield from batch


def _size(value: Any) -> int:
    if value is None:
        return 1
    if is_binary(value):
        return len(value)
    return len(as_text(value)) if not isinstance(value, str) else len(value)


def _out_of_time(plan: Plan, statement: Statement) -> Problem:
    line, _ = line_and_column(plan.script, statement.start)
    return Problem(f"The script ran longer than {settings.CONSOLE_TIMEOUT:g} seconds, so statement "
                   f"{statement.index} and those after it did not run; nothing was changed.",
                   statement.index, line, None, timed_out=True)


def statement_problem(plan: Plan, exc: DBAPIError, index: int, *, shifted: bool = False) -> Problem:
    """The message for a statement the database refused or stopped, safe to show (T32) and naming nothing
    the user cannot see (T31). ``shifted``: the engine ran the statement inside text Bastion added
    (PostgreSQL's DECLARE CURSOR for streamed queries, EXPLAIN), so its error position is left out."""
    statement = plan.statements[index - 1] if index <= len(plan.statements) else None
    line = column = None
    if statement is not None:
        offset = None if shifted else _error_offset(exc)
        line, column = line_and_column(plan.script, statement.start + (offset or 0))
        column = column if offset is not None else None
    if limits.is_timeout(exc):
        return Problem(f"The statement ran longer than {settings.CONSOLE_TIMEOUT:g} seconds and was stopped; "
                       "nothing was changed.", index, line, column, timed_out=True)
    discreet = statement is not None and _discreet(plan, statement)
    return Problem(f"{_engine_reason(exc, discreet).rstrip('.')}. Nothing was changed.", index, line, column)


def _engine_reason(exc: DBAPIError, discreet: bool) -> str:
    """The engine's reason in one line. Data and constraint errors quote values, so when the statement
    touches columns the user cannot see they are told only what kind of rule refused it."""
    reason = user_error_text(exc)
    if reason is not None:
        return generic_reason(exc) if discreet else reason
    return engine_reason(exc)


def _discreet(plan: Plan, statement: Statement) -> bool:
    """Whether the engine's words might quote a value the user may not read: a table the statement reads
    or writes has a column that is not visible to them."""
    tables = {*statement.reads, *statement.via_views, *(w.table for w in statement.writes)}
    for table in tables:
        entry = plan.catalog.lookup(table.schema, table.name)
        if entry is not None and any(plan.grants.column_mode(table, c) != ColumnMode.VISIBLE
                                     for c in entry.columns):
            return True
    return False


def _error_offset(exc: DBAPIError) -> int | None:
    """Characters into the statement where PostgreSQL says the error is (None when the engine does not say)."""
    original = exc.orig
    if isinstance(original, psycopg.Error):
        position = original.diag.statement_position
        if position and position.isascii() and position.isdigit():
            return int(position) - 1
    return None
