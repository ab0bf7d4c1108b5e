"""Bounding how long statements may run on a target database, and recognising when one was stopped.

A page that counts or sorts a table of tens of millions of rows must answer
anyway, so work is given a time limit that the database itself enforces (the
server stops the statement; nothing is left running behind a closed page).
Pooled connections are shared by users, so every limit is taken off again when
its block ends.

How each engine does it:
- PostgreSQL: ``statement_timeout`` set with ``set_config(..., true)`` (SET LOCAL),
  so it ends with the transaction at the latest; each statement gets the limit.
- MariaDB: ``max_statement_time`` (seconds), MySQL: ``max_execution_time``
  (milliseconds, SELECT only); each statement gets the limit, the previous
  session value comes back on exit.
- SQLite: a progress handler that interrupts once the block has run ``seconds``
  (one deadline for the whole block: the engine has no per-statement clock).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
from sqlalchemy import Connection, func, select, text
from sqlalchemy import exc as sa_exc

# SQLite calls the handler every this many virtual-machine instructions: a
# fraction of a millisecond, so the deadline is kept closely at little cost.
SQLITE_PROGRESS_STEPS = 4000
_SQLITE_DEADLINES = "bastion_statement_deadlines"  # key in the pooled connection's info dict

# The variable, its read and its write: constant statements, the value always a bound parameter.
_MYSQL = {
    True: (text("SELECT @@SESSION.max_statement_time"), text("SET SESSION max_statement_time = :value")),
    False: (text("SELECT @@SESSION.max_execution_time"), text("SET SESSION max_execution_time = :value")),
}
MARIADB_STATEMENT_TIMEOUT = 1969  # ER_STATEMENT_TIMEOUT
MYSQL_QUERY_TIMEOUT = 3024  # ER_QUERY_TIMEOUT
POSTGRESQL_QUERY_CANCELED = "57014"


@contextlib.contextmanager
def statement_time_limit(sa_connection: Connection, seconds: float) -> Iterator[None]:
    """Stop any statement run on ``sa_connection`` inside the block once it has run ``seconds``.

    The innermost block's limit applies; the previous one comes back when it ends.
    A stopped statement raises an error that ``is_timeout`` recognises.
    """
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError("a statement time limit must be a positive, finite number of seconds")
    name = sa_connection.dialect.name
    if name == "postgresql":
        manager = _postgresql_limit(sa_connection, seconds)
    elif name == "mysql":
        manager = _mysql_limit(sa_connection, seconds)
    elif name == "sqlite":
        manager = _sqlite_limit(sa_connection, seconds)
    else:
        raise ValueError(f"no statement time limit for the {name!r} dialect")
    with manager:
        yield


@contextlib.contextmanager
def _postgresql_limit(sa_connection: Connection, seconds: float) -> Iterator[None]:
    milliseconds = str(max(1, math.ceil(seconds * 1000)))  # 0 would mean "no limit"
    previous = sa_connection.execute(select(func.current_setting("statement_timeout"))).scalar_one()
    raw = sa_connection.connection.dbapi_connection
    # SET LOCAL has no effect outside a transaction block; an autocommit connection gets a
    # session setting instead, put back below.
    local = not raw.autocommit
    sa_connection.execute(select(func.set_config("statement_timeout", milliseconds, local)))
    try:
        yield
    finally:
        # After an error the transaction is aborted and its rollback drops the SET LOCAL;
        # any other statement would fail there.
        if raw.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            sa_connection.execute(select(func.set_config("statement_timeout", previous, local)))


@contextlib.contextmanager
def _mysql_limit(sa_connection: Connection, seconds: float) -> Iterator[None]:
    mariadb = bool(getattr(sa_connection.dialect, "is_mariadb", False))
    read, write = _MYSQL[mariadb]
    # MariaDB counts seconds (microsecond precision), MySQL milliseconds; 0 means "no limit" in both.
    value: float | int = max(seconds, 0.001) if mariadb else max(1, math.ceil(seconds * 1000))
    previous = sa_connection.execute(read).scalar_one()
    sa_connection.execute(write, {"value": value})
    try:
        yield
    finally:
        sa_connection.execute(write, {"value": previous})


@contextlib.contextmanager
def _sqlite_limit(sa_connection: Connection, seconds: float) -> Iterator[None]:
    pooled = sa_connection.connection
    raw: sqlite3.Connection = pooled.dbapi_connection  # type: ignore[assignment]
    # The deadlines of enclosing blocks, kept with the pooled connection (sqlite3
    # connections take no weak references and have no getter for the handler).
    deadlines: list[float] = pooled.info.setdefault(_SQLITE_DEADLINES, [])
    deadlines.append(time.monotonic() + seconds)
    _install_sqlite_handler(raw, deadlines[-1])
    try:
        yield
    finally:
        deadlines.pop()
        if deadlines:
            _install_sqlite_handler(raw, deadlines[-1])
        else:
            raw.set_progress_handler(None, 0)
            pooled.info.pop(_SQLITE_DEADLINES, None)


def _install_sqlite_handler(raw: sqlite3.Connection, deadline: float) -> None:
    def past_deadline() -> bool:  # a true answer makes SQLite stop with SQLITE_INTERRUPT
        return time.monotonic() > deadline

    raw.set_progress_handler(past_deadline, SQLITE_PROGRESS_STEPS)


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` (a driver error, or SQLAlchemy's wrapper of one) is a statement stopped by its time limit."""
    original: Any = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(original, sqlite3.OperationalError):
        return getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT
    if isinstance(original, psycopg.Error):
        return original.sqlstate == POSTGRESQL_QUERY_CANCELED
    if isinstance(original, pymysql.MySQLError):
        return bool(original.args) and original.args[0] in (MARIADB_STATEMENT_TIMEOUT, MYSQL_QUERY_TIMEOUT)
    return False
