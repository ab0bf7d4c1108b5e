"""How many rows tables hold, answered fast: the server's estimate where it keeps one, else a bounded count.

``SELECT count(*)`` reads a whole table; on tens of millions of rows a schema page
would never answer. PostgreSQL (``pg_class.reltuples``) and MySQL/MariaDB
(``information_schema.TABLES.TABLE_ROWS``) keep estimates; small or never-analysed
tables, and SQLite, are counted with growing LIMITs inside a time budget that the
database enforces (limits.py), so the answer may be "more than N".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection as SAConnection
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, literal_column, select, table, text
from sqlalchemy.engine import Inspector
from sqlalchemy.sql import Select

from bastion.connections import reflection
from bastion.connections.limits import is_timeout, statement_time_limit
from bastion.connections.models import Connection

COUNT_BUDGET = 0.5  # seconds of counting per row_counts() call (one schema page)
CACHE_SECONDS = 60
# Counted exactly up to the first limit; a table past it is counted again up to the next.
COUNT_STEPS = (1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
# Estimates below this are recounted: after a few inserts a small table's estimate is
# often 0 or stale, and a count up to here takes a moment.
SMALL = COUNT_STEPS[0]
EXACT_MYSQL_ENGINES = {"MyISAM", "Aria", "MEMORY"}  # they keep TABLE_ROWS exact

_POSTGRESQL_ESTIMATES = text(
    "SELECT c.relname, c.reltuples FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind IN (:plain, :partitioned)")
_MYSQL_ESTIMATES = text(
    "SELECT TABLE_NAME, TABLE_ROWS, ENGINE FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE = :base")


@dataclass(frozen=True)
class RowCount:
    """A number of rows: exact, approximate (a server estimate) or a lower bound (more_than)."""

    value: int
    approximate: bool = False
    more_than: bool = False

    @property
    def label(self) -> str:
        """As a page shows it: "1,234", "about 1,234,567", "more than 100,000"."""
        if self.more_than:
            return f"more than {self.value:,}"
        if self.approximate:
            return f"about {self.value:,}"
        return f"{self.value:,}"


def bounded_count(sa_connection: SAConnection, select_statement: Select[Any], limit: int) -> RowCount:
    """Rows of ``select_statement``, counted up to ``limit``: exact, or "more than ``limit``".

    Runs ``SELECT count(*) FROM (SELECT 1 FROM (<statement>) LIMIT limit + 1)``, so at most
    limit + 1 rows are read. Leave ORDER BY out of the statement: it only costs time here.
    Wrap the call in ``statement_time_limit`` to bound the time too.
    """
    if limit < 0:
        raise ValueError("limit must be zero or more")
    rows = select(literal_column("1")).select_from(select_statement.subquery()).limit(limit + 1).subquery()
    counted = int(sa_connection.execute(select(func.count()).select_from(rows)).scalar_one())
    return RowCount(limit, more_than=True) if counted > limit else RowCount(counted)


def row_counts(connection: Connection, schema: str | None) -> dict[str, RowCount]:
    """A RowCount for each table of ``schema`` (None: the default schema), cached for a minute.

    A table that could not be counted at all within the budget (or that the user may
    not read) is missing from the answer; show nothing for it.
    """
    names = reflection.table_names(connection, schema)

    def compute(insp: Inspector) -> dict[str, list[Any]]:
        counts = _row_counts(insp.bind, reflection.default_schema(connection) if schema is None else schema,
                             schema, names)
        # Plain data for the cache: [value, approximate, more_than].
        return {name: [count.value, count.approximate, count.more_than] for name, count in counts.items()}

    cached = reflection._cached(connection, "row_counts", (schema,), compute, ttl=CACHE_SECONDS)
    return {name: RowCount(int(value), bool(approximate), bool(more_than))
            for name, (value, approximate, more_than) in cached.items()}


def _row_counts(sa_connection: SAConnection, schema_name: str | None, schema: str | None,
                names: list[str]) -> dict[str, RowCount]:
    estimates = _estimates(sa_connection, schema_name)
    counts: dict[str, RowCount] = {}
    to_count: list[str] = []
    for name in names:
        estimate = estimates.get(name)
        if estimate is not None and (estimate.value >= SMALL or not estimate.approximate):
            counts[name] = estimate
        else:
            to_count.append(name)
    deadline = time.monotonic() + COUNT_BUDGET
    # Breadth first: every table gets its first, cheap count before any gets a second one.
    for limit in COUNT_STEPS:
        still: list[str] = []
        for name in to_count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _with_estimates(counts, estimates, to_count)
            rows = select(literal_column("1")).select_from(table(name, schema=schema))
            try:
                with statement_time_limit(sa_connection, remaining):
                    count = bounded_count(sa_connection, rows, limit)
            except sa_exc.DBAPIError as exc:
                sa_connection.rollback()  # PostgreSQL refuses anything else in a failed transaction
                if is_timeout(exc):
                    return _with_estimates(counts, estimates, to_count)
                counts.pop(name, None)  # not readable: no count rather than a wrong one
                continue
            counts[name] = count
            if count.more_than:
                still.append(name)
        to_count = still
        if not to_count:
            break
    return _with_estimates(counts, estimates, to_count)


def _with_estimates(counts: dict[str, RowCount], estimates: dict[str, RowCount],
                    unfinished: list[str]) -> dict[str, RowCount]:
    """A server estimate beats a lower bound smaller than it ("about 5,000" over "more than 1,000")."""
    for name in unfinished:
        estimate, bound = estimates.get(name), counts.get(name)
        if estimate is not None and (bound is None or estimate.value > bound.value):
            counts[name] = estimate
    return counts


def _estimates(sa_connection: SAConnection, schema_name: str | None) -> dict[str, RowCount]:
    dialect = sa_connection.dialect.name
    if dialect == "postgresql":
        rows = sa_connection.execute(_POSTGRESQL_ESTIMATES,
                                     {"schema": schema_name, "plain": "r", "partitioned": "p"}).all()
        # reltuples is -1 before the first ANALYZE (PostgreSQL 14+) and always for a partitioned parent.
        return {str(name): RowCount(round(tuples), approximate=True) for name, tuples in rows if tuples >= 0}
    if dialect == "mysql":
        rows = sa_connection.execute(_MYSQL_ESTIMATES, {"schema": schema_name, "base": "BASE TABLE"}).all()
        return {str(name): RowCount(int(rows_), approximate=engine not in EXACT_MYSQL_ENGINES)
                for name, rows_, engine in rows if rows_ is not None}
    return {}  # SQLite keeps no row counts
