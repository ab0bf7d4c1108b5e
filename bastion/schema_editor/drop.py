"""Dropping a table or view, or emptying a table: the plan shown before, and the run (T37, T33, T02).

``plan`` gives what the confirmation page shows: the exact statement, a bounded row
count and the foreign keys of other tables that refer to the table (named only when
the user may see the referring table). ``run`` trusts nothing from the view: it
checks the grant and the typed name again, then runs the one statement

- on PostgreSQL and SQLite inside a transaction (SQLite: an explicit BEGIN through
  the driver), with the audit event written before the commit, so a failure leaves
  everything as it was;
- on MySQL/MariaDB, whose DDL and TRUNCATE commit by themselves, as one statement,
  audited right after;
- under the statement time limit (bastion.connections.limits).

Dropping a table (not a view, not emptying) first takes its snapshot in the same transaction
(bastion.schema_editor.snapshots: the statements that recreate it and, under the configured size,
its rows), kept with the one audit event of the drop, whose details carry the snapshot's hashes.

Names are never pasted into SQL: DROP TABLE / DROP VIEW are SQLAlchemy's DDL
constructs, TRUNCATE is compiled with the dialect's identifier preparer, and
SQLite (which has no TRUNCATE) gets a DELETE statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from sqlalchemy import Connection as SAConnection
from sqlalchemy import MetaData, Table, delete, literal_column, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import DropTable, DropView, ExecutableDDLElement
from sqlalchemy.sql import Executable

from bastion.access.models import Action, ColumnMode
from bastion.access.policy import Resource, check, column_modes, visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits, reflection
from bastion.connections.counts import RowCount, bounded_count
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason, safe_message
from bastion.explorer.schema import TableInfo
from bastion.schema_editor import snapshots

DROP, EMPTY = "drop", "empty"
TABLE_DROPPED = "schema.table_dropped"
TABLE_EMPTIED = "schema.table_emptied"
COUNT_LIMIT = 100_000  # rows counted exactly; beyond: "more than"
COUNT_SECONDS = 2.0  # time the count may take
DEPENDENTS = ("Other tables or views still depend on this table (rows of other tables refer to it through a "
              "foreign key, or a view or key is built on it), so nothing was changed.")
_PG_DEPENDENTS = frozenset({"2BP01", "23503", "0A000"})  # dependent objects; FK violation; truncate of referenced
_MYSQL_DEPENDENTS = frozenset({1217, 1451, 1701, 3730})


class NotPermitted(Exception):
    """The user may not drop (or empty) this table."""


class Refused(Exception):
    """Nothing ran; ``str()`` is a short message safe to show (wrong name typed, empty on a view)."""


class DropFailed(Exception):
    """The database refused the statement; ``str()`` is a short message safe to show. Nothing was changed."""


class _Truncate(ExecutableDDLElement):
    """TRUNCATE TABLE <table>, the name written by the dialect's identifier preparer."""

    def __init__(self, element: Table) -> None:
        self.element = element


@compiles(_Truncate)
def _compile_truncate(element: _Truncate, compiler: Any, **_: Any) -> str:
    return "TRUNCATE TABLE " + compiler.preparer.format_table(element.element)


@dataclass(frozen=True)
class Reference:
    """A foreign key of a table the user may see that refers to the table."""

    schema: str | None
    table: str
    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    info: TableInfo
    statements: dict[str, str]  # action -> the exact statement it runs
    count: RowCount | None  # None: could not be counted in time
    references: tuple[Reference, ...]
    hidden_references: int  # foreign keys of tables the user may not see: counted, never named
    blocked: dict[str, str]  # action -> why it cannot run here: it would reach other tables (reaches_further)


def actions_for(info: TableInfo) -> list[str]:
    """What may be done to ``info``: views can only be dropped."""
    return [DROP] if info.is_view else [DROP, EMPTY]


def _sa_table(info: TableInfo) -> Table:
    return Table(info.name, MetaData(), schema=info.schema, quote=True, quote_schema=True)


def statement(info: TableInfo, action: str, dialect: Any) -> Executable:
    """The one statement ``action`` runs on ``info`` for ``dialect``."""
    if action not in actions_for(info):
        raise Refused("A view can be dropped, not emptied." if info.is_view else "Choose drop or empty.")
    sa_table = _sa_table(info)
    if action == DROP:
        return DropView(sa_table) if info.is_view else DropTable(sa_table)
    if dialect.name == "sqlite":
        return delete(sa_table)  # SQLite has no TRUNCATE
    return _Truncate(sa_table)


def statement_sql(info: TableInfo, action: str, dialect: Any) -> str:
    """The statement as the database receives it (see definition.create_table_sql on doubled %)."""
    text = str(statement(info, action, dialect).compile(dialect=dialect)).strip()
    if dialect.paramstyle in ("format", "pyformat"):
        text = text.replace("%%", "%")
    return text


def may_drop(user: Any, info: TableInfo) -> bool:
    resource = Resource(info.connection.pk, info.schema, info.name)
    return check(user, Action.DROP, resource) and bool(
        visible_tables(user, info.connection.pk, info.schema, [info.name]))


def _count(conn: SAConnection, info: TableInfo) -> RowCount | None:
    """Rows of the table up to COUNT_LIMIT, in at most COUNT_SECONDS; None when that was not enough.

    Ends the transaction it opens, so the caller may begin its own.
    """
    rows = select(literal_column("1")).select_from(_sa_table(info))
    try:
        with limits.statement_time_limit(conn, COUNT_SECONDS):
            found = bounded_count(conn, rows, COUNT_LIMIT)
    except DBAPIError:
        found = None
    conn.rollback()
    return found


def references(user: Any, info: TableInfo) -> tuple[tuple[Reference, ...], int]:
    """Foreign keys of other tables referring to ``info`` that the user may see, and how many others there are."""
    shown, hidden = [], 0
    for fk in reflection.referencing_foreign_keys(info.connection, info.schema, info.name):
        same = fk["schema"] == info.schema and fk["table"] == info.name
        if same:
            continue  # a self-reference goes with the table
        columns = tuple(fk["constrained_columns"])
        seen = visible_tables(user, info.connection.pk, fk["schema"], [fk["table"]]) and all(
            view.mode == ColumnMode.VISIBLE
            for view in column_modes(user, info.connection.pk, fk["schema"], fk["table"], columns).values())
        if seen:  # a reference by a column the user may not see is counted, never named (T31)
            shown.append(Reference(fk["schema"], fk["table"], fk["name"], columns))
        else:
            hidden += 1
    return tuple(shown), hidden


def plan(user: Any, info: TableInfo) -> Plan:
    """What the confirmation page shows for ``info``: each possible statement, rows, references. Changes nothing."""
    if not may_drop(user, info):
        raise NotPermitted("You may not drop this table.")
    with get_engine(info.connection).connect() as conn:
        statements = {action: statement_sql(info, action, conn.dialect) for action in actions_for(info)}
        blocked = {action: why for action in statements if (why := reaches_further(conn, info, action))}
        conn.rollback()
        count = _count(conn, info)
    shown, hidden = references(user, info)
    return Plan(info, statements, count, shown, hidden, blocked)


# Where dropping or emptying one table would also change others (which the user may not even see):
# SQLite runs the ON DELETE rules of referring tables and the table's DELETE triggers for both DROP
# and DELETE; PostgreSQL's TRUNCATE and DROP reach inheriting tables and partitions, and TRUNCATE runs
# the table's triggers. Bastion refuses these cases rather than change tables nobody confirmed.
_SQLITE_TRIGGERS = text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table")
_PG_CHILDREN = text(
    "SELECT count(*) FROM pg_inherits WHERE inhparent = "
    "to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), CAST(:table AS text)))")
_PG_TRIGGERS = text(
    "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = "
    "to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), CAST(:table AS text)))")
REACHES_FURTHER = ("Bastion does not drop or empty this table: doing so would also change other tables "
                   "({why}). Remove that first, or use a database tool where you see everything it touches.")


def reaches_further(conn: SAConnection, info: TableInfo, action: str) -> str | None:
    """Why ``action`` on ``info`` would change more than ``info`` on this engine; None when it would not.

    Triggers matter only for emptying: SQLite's implicit delete on DROP TABLE fires none, PostgreSQL's
    DROP none either."""
    if info.is_view:
        return None
    names = {"schema": info.schema, "table": info.name}
    dialect = conn.dialect.name
    if dialect == "sqlite":
        referring = [fk for fk in reflection.referencing_foreign_keys(info.connection, info.schema, info.name)
                     if (fk["schema"], fk["table"]) != (info.schema, info.name)]
        if referring:
            return REACHES_FURTHER.format(why="other tables refer to it, and SQLite would run their ON DELETE rules")
        if action == EMPTY and conn.execute(_SQLITE_TRIGGERS, {"table": info.name}).scalar_one():
            return REACHES_FURTHER.format(why="it has triggers, which SQLite would run for every row")
    elif dialect == "postgresql":
        if conn.execute(_PG_CHILDREN, names).scalar_one():
            return REACHES_FURTHER.format(why="tables inherit from it or are its partitions")
        if action == EMPTY and conn.execute(_PG_TRIGGERS, names).scalar_one():
            return REACHES_FURTHER.format(why="it has triggers, which emptying it would run")
    return None


def definition(info: TableInfo) -> dict[str, Any]:
    """The table's definition for the audit log: columns with types, primary key, foreign keys (view: its SQL)."""
    found: dict[str, Any] = {
        "schema": info.schema,
        "table": info.name,
        "kind": "view" if info.is_view else "table",
        "columns": [{key: c[key] for key in ("name", "type", "nullable", "default", "primary_key", "autoincrement")}
                    for c in reflection.columns(info.connection, info.schema, info.name)],
    }
    if info.is_view:
        found["definition"] = reflection.view_definition(info.connection, info.schema, info.name)
        return found
    found["primary_key"] = [c.name for c in info.columns if c.primary_key]
    found["foreign_keys"] = [
        {"name": fk.name, "columns": list(fk.columns), "referred_schema": fk.referred_schema,
         "referred_table": fk.referred_table, "referred_columns": list(fk.referred_columns)}
        for fk in info.foreign_keys]
    found["unique"] = reflection.unique_keys(info.connection, info.schema, info.name)
    found["indexes"] = reflection.indexes(info.connection, info.schema, info.name)
    return found


def _event(action: str) -> str:
    return TABLE_DROPPED if action == DROP else TABLE_EMPTIED


def _target(info: TableInfo) -> str:
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def _details(info: TableInfo, count: RowCount | None) -> dict[str, Any]:
    return {"connection_id": info.connection.pk, "schema": info.schema, "table": info.name,
            "kind": "view" if info.is_view else "table",
            "rows": None if count is None else count.value,
            "rows_label": "not counted" if count is None else count.label}


def _failure_message(exc: DBAPIError) -> str:
    original: Any = exc.orig
    if limits.is_timeout(exc):
        return ("The database did not finish in time (another session may hold a lock on this table). Nothing "
                "was changed; try again.")
    if isinstance(original, psycopg.Error):
        if original.sqlstate in _PG_DEPENDENTS:
            return DEPENDENTS
        return f"The database refused the statement: {engine_reason(exc)}"
    if isinstance(original, pymysql.MySQLError) and original.args and original.args[0] in _MYSQL_DEPENDENTS:
        return DEPENDENTS
    text = safe_message(exc)
    if "FOREIGN KEY constraint failed" in text:  # SQLite
        return DEPENDENTS
    return f"The database refused the statement: {text}"


def run(user: Any, request: HttpRequest | None, info: TableInfo, action: str, typed_name: str, *,
        approved: dict[str, Any] | None = None) -> RowCount | None:
    """Drop or empty ``info`` once ``typed_name`` is exactly its name; the rows it held (bounded count).
    ``approved``: who approved it under the two-person rule, for the change's event.

    NotPermitted, Refused: nothing ran, nothing audited. DropFailed: the database refused and nothing was
    changed (audited as a failure).
    """
    if not may_drop(user, info):
        raise NotPermitted("You may not drop this table.")
    if action not in actions_for(info):
        raise Refused("A view can be dropped, not emptied." if info.is_view else "Choose drop or empty.")
    if typed_name != info.name:
        raise Refused("The name you typed is not the table's name, so nothing was changed. Type it exactly, "
                      "as shown.")
    before = definition(info)
    with get_engine(info.connection).connect() as conn:
        sql = statement_sql(info, action, conn.dialect)
        count = _count(conn, info)
        try:
            _run(conn, request, user, info, action, sql, before, count, approved or {})
        except DBAPIError as exc:
            failure: DBAPIError | None = exc
        else:
            failure = None
    reflection.invalidate(info.connection)  # also after a failure: the catalogue may have been out of date
    if failure is not None:
        message = _failure_message(failure)
        record(_event(action), request=request, actor=user, target=_target(info), outcome=Outcome.FAILURE,
               details={**_details(info, count), **(approved or {}), "error": message}, before=before,
               after={"ddl": sql})
        raise DropFailed(message)
    return count


def _run(conn: SAConnection, request: HttpRequest | None, user: Any, info: TableInfo, action: str, sql: str,
         before: dict[str, Any], count: RowCount | None, approved: dict[str, Any]) -> None:
    transactional = conn.dialect.name in ("postgresql", "sqlite")
    with conn.begin():
        if conn.dialect.name == "sqlite":
            # Python's sqlite3 would commit DDL at once; an explicit BEGIN makes it part of the transaction.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        blocked = reaches_further(conn, info, action)  # inside the transaction: nothing changes in between
        if blocked is not None:
            raise Refused(blocked)
        snapshot = snapshots.take(conn, info, count) if action == DROP and not info.is_view else None
        with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
            result = conn.execute(statement(info, action, conn.dialect))
        if action == EMPTY and conn.dialect.name == "sqlite" and result.rowcount is not None \
                and result.rowcount >= 0:
            count = RowCount(result.rowcount)  # DELETE tells exactly how many rows it removed
        if transactional:  # audited before the commit: no event, no change
            _audit(request, user, info, action, sql, before, count, snapshot, approved)
    if not transactional:  # MySQL/MariaDB: the statement committed itself
        _audit(request, user, info, action, sql, before, count, snapshot, approved)


def _audit(request: HttpRequest | None, user: Any, info: TableInfo, action: str, sql: str, before: dict[str, Any],
           count: RowCount | None, snapshot: snapshots.Snapshot | None, approved: dict[str, Any]) -> None:
    """The one event of the change, and the table's snapshot with it (both written, or neither)."""
    details = {**_details(info, count), **approved}
    if snapshot is not None:
        details["snapshot"] = snapshots.summary(snapshot)
    with transaction.atomic():
        event = record(_event(action), request=request, actor=user, target=_target(info), details=details,
                       before={**before, "rows": None if count is None else count.value}, after={"ddl": sql})
        if snapshot is not None:
            snapshots.store(event, snapshot)
