"""Writing converted rows into a table inside the import's one transaction, per engine, fast.

* PostgreSQL with "fail on conflict": ``COPY ... FROM STDIN`` through psycopg 3 (one statement
  for the whole import, rows streamed to the server as they are converted).
* Every other case: the INSERT statement is compiled once by SQLAlchemy for the connection's
  dialect (identifiers quoted by the dialect, values as bound parameters), then each batch goes
  to the driver's ``executemany`` (PyMySQL folds it into multi-row INSERTs), under a savepoint.
  When the database refuses a batch, its rows are tried one at a time, each under its own
  savepoint, so the error names the row; the import then stops and everything is rolled back.

Conflict modes: "fail" (a duplicate key stops the import), "skip" (rows whose key exists are left
out: ON CONFLICT DO NOTHING, or a no-op ON DUPLICATE KEY UPDATE on MySQL, never INSERT IGNORE,
which would also turn type errors into warnings) and "update" (the row's other columns are
overwritten: ON CONFLICT (key) DO UPDATE / ON DUPLICATE KEY UPDATE).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql as pgsql
from sqlalchemy import Connection, bindparam, column, insert, table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from bastion.connections.errors import engine_reason, one_line
from bastion.connections.limits import is_timeout

CONFLICT_MODES = ("fail", "skip", "update")
_COPY_LINE = re.compile(r"\bline (\d+)\b")


class RowRefused(Exception):
    """The database refused row ``index`` (0-based, counted over everything written); ``str()`` says why."""

    def __init__(self, index: int | None, message: str, column: str = "") -> None:
        super().__init__(message)
        self.index, self.column = index, column


def _refusal_column(exc: DBAPIError) -> str:
    original: Any = exc.orig
    if isinstance(original, psycopg.Error):
        return original.diag.column_name or ""
    return ""


class Writer:
    """Rows into one table; ``write`` a batch at a time, ``close`` at the end (before the commit)."""

    written = 0  # rows sent
    affected: int | None = 0  # rows inserted or updated, as the driver counts them (None: it cannot tell)

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish what the writer started (the COPY); may raise RowRefused."""


class InsertWriter(Writer):
    def __init__(self, conn: Connection, schema: str | None, name: str, columns: Sequence[str],
                 key: Sequence[str], conflict: str) -> None:
        self.conn = conn
        target = table(name, *(column(c) for c in columns), schema=schema)
        values = {c: bindparam(f"p{i}") for i, c in enumerate(columns)}
        statement = _with_conflict(conn.dialect.name, target, values, columns, key, conflict)
        compiled = statement.compile(dialect=_compiling_dialect(conn, [name, schema or "", *columns]))
        self.sql = str(compiled)
        self.names = [f"p{i}" for i in range(len(columns))]
        self.positional = compiled.positional
        if self.positional and list(compiled.positiontup or ()) != self.names:
            raise ValueError("unexpected parameter order")  # every value is bound once, in column order
        self.cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if conn.dialect.name == "mysql" and conflict != "fail":
            # With CLIENT_FOUND_ROWS (SQLAlchemy's default) a skipped row counts as matched: no count to give.
            self.affected = None

    def _parameters(self, rows: Sequence[tuple[Any, ...]]) -> Sequence[Any]:
        return rows if self.positional else list(map(dict, map(zip, itertools.repeat(self.names), rows)))

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        try:
            self._attempt(rows)
        except DBAPIError as exc:
            if not (is_timeout(exc) or self._transaction_lost()):  # the time limit is no row's fault
                self._find_refused(rows)
            raise
        self.written += len(rows)

    def _attempt(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """``rows`` under a savepoint, rolled back to it when refused; when the database rolled the whole
        transaction back itself, the error as it is (there is no savepoint left)."""
        savepoint = self.conn.begin_nested()
        try:
            self._executemany(rows)
        except DBAPIError:
            if not self._transaction_lost():
                savepoint.rollback()
            raise
        savepoint.commit()

    def _transaction_lost(self) -> bool:
        """SQLite rolls the whole transaction back on some errors (a trigger's RAISE(ROLLBACK), an interrupt by the
        time limit, a full disk): rows tried one by one then would each commit on their own (all or nothing)."""
        raw: Any = self.conn.connection.dbapi_connection
        return self.conn.dialect.name == "sqlite" and not raw.in_transaction

    def _executemany(self, rows: Sequence[tuple[Any, ...]]) -> None:
        try:
            self.cursor.executemany(self.sql, self._parameters(rows))
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError(self.sql, None, exc) from exc
        if self.affected is not None:
            self.affected += max(self.cursor.rowcount, 0)

    def _find_refused(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The first row of a refused batch that the database refuses alone: raised as RowRefused."""
        for offset, row in enumerate(rows):
            try:
                self._attempt([row])
            except DBAPIError as exc:
                if is_timeout(exc):
                    raise
                raise RowRefused(self.written + offset, engine_reason(exc), _refusal_column(exc)) from None


def _compiling_dialect(conn: Connection, names: Sequence[str]) -> Any:
    """The connection's dialect; for SQLite names holding "%", with named parameters: compiling for its qmark
    style, SQLAlchemy rewrites "%(name)s" into "?" even inside a quoted name (T02). Otherwise qmark, whose
    tuples bind faster than named parameters' dictionaries."""
    dialect = conn.dialect
    if dialect.name == "sqlite" and dialect.paramstyle != "named" and any("%" in name for name in names):
        return type(dialect)(paramstyle="named")
    return dialect


def _with_conflict(dialect: str, target: Any, values: dict[str, Any], columns: Sequence[str],
                   key: Sequence[str], conflict: str) -> Any:
    others = [c for c in columns if c not in key]
    if conflict == "fail":
        return insert(target).values(values)
    if dialect == "mysql":
        statement = mysql.insert(target).values(values)
        if conflict == "skip" or not others:  # a no-op update: the existing row stays as it is
            return statement.on_duplicate_key_update({key[0]: target.c[key[0]]})
        return statement.on_duplicate_key_update({c: statement.inserted[c] for c in others})
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = dialect_insert(target).values(values)
    if conflict == "skip" or not others:
        return statement.on_conflict_do_nothing(index_elements=list(key))
    return statement.on_conflict_do_update(index_elements=list(key),
                                           set_={c: statement.excluded[c] for c in others})


class CopyWriter(Writer):
    """PostgreSQL's COPY FROM STDIN: the fastest way in; a refused row is named by COPY's own "line N"."""

    def __init__(self, conn: Connection, schema: str | None, name: str, columns: Sequence[str]) -> None:
        raw = conn.connection.dbapi_connection
        self.cursor = raw.cursor()  # type: ignore[union-attr]
        target = pgsql.Identifier(schema, name) if schema else pgsql.Identifier(name)
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            target, pgsql.SQL(", ").join(pgsql.Identifier(c) for c in columns))
        self._copy_context = self.cursor.copy(statement)
        try:
            self.copy = self._copy_context.__enter__()
        except psycopg.Error as exc:  # refused at once (a column gone since the table was read): no row to blame
            raise DBAPIError(statement.as_string(raw), None, exc) from exc

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        try:
            for row in rows:
                self.copy.write_row(row)
        except psycopg.Error as exc:
            self._refused(exc)
        self.written += len(rows)

    def close(self) -> None:
        try:
            self._copy_context.__exit__(None, None, None)
        except psycopg.Error as exc:
            self._refused(exc)
        self.affected = self.written

    def abort(self) -> None:
        """Stop the COPY (cancel, or an error of ours): the server discards it and the transaction fails."""
        with contextlib.suppress(psycopg.Error):
            self._copy_context.__exit__(RuntimeError, RuntimeError("import stopped"), None)

    def _refused(self, exc: psycopg.Error) -> None:
        if is_timeout(exc):  # the time limit is no row's fault
            raise DBAPIError("COPY", None, exc) from exc
        found = _COPY_LINE.search(exc.diag.context or "")
        index = int(found.group(1)) - 1 if found else None
        raise RowRefused(index, one_line(exc.diag.message_primary or str(exc)), exc.diag.column_name or "") \
            from None


def writer_for(conn: Connection, schema: str | None, name: str, columns: Sequence[str], key: Sequence[str],
               conflict: str) -> Writer:
    if conn.dialect.name == "postgresql" and conflict == "fail":
        return CopyWriter(conn, schema, name, columns)
    return InsertWriter(conn, schema, name, columns, key, conflict)
