"""Restoring a dropped table from the snapshot its drop kept in the audit store (T37, T34, T20, T33).

``plan`` gives what the confirmation page shows: where the table goes back, the exact statements, how
many rows follow, and why it cannot be restored now, if it cannot. ``run`` trusts nothing from the view:
it checks the grants, the drop's audit event (its HMAC and its links in the chain) and the snapshot
against the hashes that event carries, and that the name is free; then it creates the table and inserts
the kept rows with bound parameters, in batches:

- on PostgreSQL and SQLite in one transaction (all of it, or nothing);
- on MySQL/MariaDB, whose CREATE commits by itself, the rows in a transaction after it; if anything after
  the CREATE fails, the new table is dropped again, so nothing is left half-done.

One event, ``schema.table_restored``, records the statements, the rows and the drop it undoes: a success
only once the target's COMMIT returned (a deferred constraint refuses the rows only then), otherwise a
failure; never both (T33). The kept values are never shown (hidden columns, T31): a failure while
inserting or committing them is told without the database's message, which may quote a value.
"""

from __future__ import annotations

import hmac
import zlib
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pymysql
from django.conf import settings
from sqlalchemy import Connection as SAConnection
from sqlalchemy import MetaData, String, Table, bindparam, cast, column, func, insert, select
from sqlalchemy import table as sql_table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import DropTable

from bastion.access.models import Action
from bastion.access.policy import Resource, can_write_column, check, visible_connection_ids
from bastion.audit.chain import HASHED_FIELDS, event_hash
from bastion.audit.integrity import snapshot_intact
from bastion.audit.models import AuditEvent, Outcome, TableSnapshot
from bastion.audit.services import record
from bastion.connections import limits, reflection
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason, safe_message
from bastion.connections.models import Connection
from bastion.explorer.schema import dialect_name
from bastion.explorer.views import UNREACHABLE
from bastion.schema_editor import snapshots
from bastion.schema_editor.drop import TABLE_DROPPED
from bastion.schema_editor.services import NAME_TAKEN, table_name_problem

TABLE_RESTORED = "schema.table_restored"
INSERT_BATCH = 500
GONE = "The connection this table was on has been deleted, so it cannot be restored."
OTHER_ENGINE = ("The connection now points at another kind of database than the one the table was dropped from, "
                "so its statements cannot run there.")
NOT_VISIBLE = "You cannot see the connection this table was on, so you cannot restore it."
NEEDS = ("Restoring this table needs the alter grant on its schema and the insert grant on the table, for every "
         "column.")
TAMPERED = ("The kept snapshot does not match what its audit event recorded: it may have been changed, so nothing "
            "was restored. Run “bastion audit verify” and tell an administrator.")
UNREADABLE = "The kept rows are in a form this version of Bastion cannot read, so nothing was restored."
ROWS_REFUSED = ("The database refused the kept rows ({code}), for example because a row another table must hold is "
                "gone or a constraint refuses a value, so nothing was restored.")


class NotFound(Exception):
    """No successful drop of a table with a snapshot has this id."""


class NotPermitted(Exception):
    """The user may not restore this table; ``str()`` says why."""


class Refused(Exception):
    """Nothing ran; ``str()`` is a short message safe to show."""


class RestoreFailed(Exception):
    """The database refused, or the snapshot failed its checks; nothing was left changed. Audited."""


@dataclass(frozen=True)
class Plan:
    event: AuditEvent
    snapshot: TableSnapshot
    connection: Connection | None  # None: deleted since
    connection_id: int
    schema: str | None
    table: str
    statements: tuple[str, ...]  # before the rows: CREATE TABLE, CREATE INDEX (MySQL: ALTER TABLE for keys)
    finish: tuple[str, ...]  # after the rows
    sequences: tuple[str, ...]  # columns whose sequence is set past the highest restored value
    rows: int | None  # None: only the definition was kept
    problem: str  # why it cannot be restored now; "" when it can (as far as a look can tell)

    @property
    def target(self) -> str:
        name = self.connection.name if self.connection else f"connection #{self.connection_id}"
        return f"{name}: {self.schema + '.' if self.schema else ''}{self.table}"

    @property
    def resource(self) -> Resource:
        return Resource(self.connection_id, self.schema, self.table)


def _found(event_id: int) -> tuple[AuditEvent, TableSnapshot]:
    event = AuditEvent.objects.filter(pk=event_id, action=TABLE_DROPPED, outcome=Outcome.SUCCESS).first()
    snapshot = TableSnapshot.objects.filter(event_id=event_id).first() if event else None
    if event is None or snapshot is None:
        raise NotFound(event_id)
    return event, snapshot


def plan(user: Any, event_id: int) -> Plan:
    """What restoring the table dropped in event ``event_id`` would do, for ``user``; NotFound without a snapshot."""
    event, snapshot = _found(event_id)
    details = event.details
    connection = Connection.objects.filter(pk=details.get("connection_id")).first()
    found = Plan(
        event=event, snapshot=snapshot, connection=connection, connection_id=int(details["connection_id"]),
        schema=details.get("schema") or None, table=str(details["table"]),
        statements=(snapshot.create_sql, *snapshot.index_sql), finish=tuple(snapshot.finish_sql),
        sequences=tuple(c["name"] for c in snapshot.columns if c.get("sequence")),
        rows=snapshot.row_count if snapshot.rows_kept else None, problem="")
    return replace(found, problem=_problem(user, found))


def _problem(user: Any, found: Plan) -> str:
    connection = found.connection
    if connection is None:
        return GONE
    if connection.pk not in visible_connection_ids(user):
        return NOT_VISIBLE
    if dialect_name(connection) != found.snapshot.dialect:
        return OTHER_ENGINE
    try:
        if found.schema is not None and found.schema not in reflection.schema_names(connection):
            return f"The schema “{found.schema}” no longer exists, so the table cannot be restored into it."
        taken = table_name_problem(user, connection, found.schema, found.table)
    except UNREACHABLE as exc:
        return f"The database cannot be reached now: {safe_message(exc)}"
    if taken == NAME_TAKEN:  # what takes the name is not the user's to know
        return "A table or view in that schema has this name now, so nothing can be restored there."
    if taken:
        return f"{taken} Nothing is restored over it: drop or rename it first."
    return ""


def may_restore(user: Any, found: Plan) -> bool:
    """Audit view, alter on the schema, insert on the table and on every kept column (hidden ones too)."""
    if not check(user, Action.AUDIT_VIEW) or found.connection_id not in visible_connection_ids(user):
        return False
    if not check(user, Action.ALTER, Resource(found.connection_id, found.schema)):
        return False
    table = found.resource
    return check(user, Action.INSERT, table) and all(
        can_write_column(user, Action.INSERT, Resource(table.connection_id, table.schema, table.table, c["name"]))
        for c in found.snapshot.columns)


def refusal(found: Plan) -> str:
    """Why ``may_restore`` says no, in a sentence."""
    return found.problem if found.problem in (GONE, NOT_VISIBLE) else NEEDS


# --- checks of the audit store -------------------------------------------------------------------------
def event_intact(event: AuditEvent) -> bool:
    """The event is as it was written (its HMAC) and still sits between its neighbours in the chain."""
    fields = {name: getattr(event, name) for name in HASHED_FIELDS}
    if not hmac.compare_digest(event.hash, event_hash(fields)):
        return False
    before = AuditEvent.objects.filter(seq=event.seq - 1).values_list("hash", flat=True).first()
    after = AuditEvent.objects.filter(seq=event.seq + 1).values_list("prev_hash", flat=True).first()
    return (before == event.prev_hash if event.seq > 1 else True) and after in (None, event.hash)


# --- running -------------------------------------------------------------------------------------------
def _details(found: Plan, rows: int) -> dict[str, Any]:
    return {"connection_id": found.connection_id, "schema": found.schema, "table": found.table,
            "restored_from": found.event.pk, "restored_from_seq": found.event.seq, "rows": rows}


def _audit_failure(request: Any, user: Any, found: Plan, message: str) -> None:
    record(TABLE_RESTORED, request=request, actor=user, target=found.target, outcome=Outcome.FAILURE,
           details={**_details(found, 0), "error": message}, after={"ddl": [*found.statements, *found.finish]})


def run(user: Any, request: Any, event_id: int) -> Plan:
    """Restore the table dropped in event ``event_id``; the plan it followed.

    NotFound, NotPermitted, Refused: nothing ran, nothing audited. RestoreFailed: nothing was left changed
    (audited as a failure).
    """
    found = plan(user, event_id)
    connection = found.connection
    if connection is None:
        raise Refused(GONE)
    if not may_restore(user, found):
        raise NotPermitted(refusal(found))
    if found.problem:
        raise Refused(found.problem)
    if not (event_intact(found.event) and snapshot_intact(found.event, found.snapshot)):
        _audit_failure(request, user, found, TAMPERED)
        raise RestoreFailed(TAMPERED)
    try:
        rows = snapshots.rows_of(found.snapshot) if found.snapshot.rows_kept else []
    except (ValueError, KeyError, TypeError, zlib.error):  # intact, yet not what this version writes
        _audit_failure(request, user, found, UNREADABLE)
        raise RestoreFailed(UNREADABLE) from None
    with get_engine(connection).connect() as conn:
        try:
            _run(conn, found, rows)
        except _Failed as exc:
            failure: str | None = str(exc)
        else:
            failure = None
    reflection.invalidate(connection)  # also after a failure: the catalogue may have been out of date
    if failure is not None:
        _audit_failure(request, user, found, failure)
        raise RestoreFailed(failure)
    _audit(request, user, found, len(rows))  # the target committed: now, and only now, it happened
    return found


class _Failed(Exception):
    """What went wrong on the target, as a message safe to show; everything there was undone."""


def _structure_failure(exc: DBAPIError) -> _Failed:
    if limits.is_timeout(exc):
        return _Failed("The database did not finish in time (another session may hold a lock). Nothing was "
                       "restored; try again.")
    return _Failed(f"The database refused the table: {engine_reason(exc)} Nothing was restored.")


def _rows_failure(exc: DBAPIError) -> _Failed:
    """Said without the database's text, which may quote a kept value of a column the user may not see."""
    if limits.is_timeout(exc):
        return _structure_failure(exc)
    original: Any = exc.orig
    if isinstance(original, psycopg.Error):
        code = f"SQLSTATE {original.sqlstate}"
    elif isinstance(original, pymysql.MySQLError) and original.args:
        code = f"error {original.args[0]}"
    else:
        code = type(original).__name__
    return _Failed(ROWS_REFUSED.format(code=code))


def _run(conn: SAConnection, found: Plan, rows: list[list[Any]]) -> None:
    """Create the table and insert the rows; returns once the target committed them. _Failed: nothing is left."""
    transactional = conn.dialect.name in ("postgresql", "sqlite")
    created = filled = False
    try:
        with conn.begin():
            if conn.dialect.name == "sqlite":
                # Python's sqlite3 would commit DDL at once; an explicit BEGIN makes it part of the transaction.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
                for sql in found.statements:
                    conn.exec_driver_sql(snapshots.driver_text(sql, conn.dialect))
                    created = True  # MySQL/MariaDB: committed by itself
                _fill(conn, found, rows)
            filled = True  # from here, what fails is the COMMIT: deferred constraints, checked on the rows
    except DBAPIError as exc:
        failure = _rows_failure(exc) if filled and rows else _structure_failure(exc)
    except _Failed as exc:
        failure = exc
    else:
        return
    if created and not transactional:
        failure = _drop_again(conn, found, failure)
    raise failure


def _drop_again(conn: SAConnection, found: Plan, failure: _Failed) -> _Failed:
    """MySQL/MariaDB: nothing half-done, the table just created goes again (the rows were rolled back)."""
    try:
        with conn.begin():
            conn.execute(DropTable(Table(found.table, MetaData(), schema=found.schema, quote=True,
                                         quote_schema=True)))
    except DBAPIError:
        return _Failed(f"{failure} The table created for it could not be dropped again: drop the empty table "
                       f"“{found.table}” yourself.")
    return failure


def _fill(conn: SAConnection, found: Plan, rows: list[list[Any]]) -> None:
    """Insert the kept rows into the table just created, set its sequences, then run what follows the rows.
    The new table is reflected only when its column types are needed (PostgreSQL: casts, sequences)."""
    kept = found.snapshot.columns
    created = (Table(found.table, MetaData(), schema=found.schema, autoload_with=conn, resolve_fks=False)
               if found.sequences or any(c["cast"] for c in kept) else None)
    target = sql_table(found.table, *(column(c["name"]) for c in kept), schema=found.schema)
    values = {}
    for number, kept_column in enumerate(kept):
        name = kept_column["name"]
        parameter = bindparam(f"p{number}", type_=String()) if kept_column["cast"] else bindparam(f"p{number}")
        if kept_column["cast"] and created is not None:
            values[target.c[name]] = cast(parameter, created.c[name].type)
        else:
            values[target.c[name]] = parameter
    statement = insert(target).values(values)
    try:
        for start in range(0, len(rows), INSERT_BATCH):
            batch = rows[start:start + INSERT_BATCH]
            conn.execute(statement, [{f"p{n}": value for n, value in enumerate(row)} for row in batch])
    except DBAPIError as exc:
        raise _rows_failure(exc) from None
    if created is not None:
        for name in found.sequences:  # before ``finish``: forced row-level security would hide rows from max()
            _set_sequence(conn, found, created, name)
    for sql in found.finish:
        conn.exec_driver_sql(snapshots.driver_text(sql, conn.dialect))


def _set_sequence(conn: SAConnection, found: Plan, created: Table, name: str) -> None:
    """PostgreSQL: the column's (new) sequence continues after the highest restored value."""
    qualified = conn.dialect.identifier_preparer.format_table(created)
    if conn.dialect.paramstyle in ("format", "pyformat"):
        qualified = qualified.replace("%%", "%")
    highest = func.max(created.c[name])
    conn.execute(select(func.setval(func.pg_get_serial_sequence(bindparam("t", qualified), bindparam("c", name)),
                                    highest)).select_from(created).having(highest.is_not(None)))


def _audit(request: Any, user: Any, found: Plan, rows: int) -> None:
    record(TABLE_RESTORED, request=request, actor=user, target=found.target, details=_details(found, rows),
           after={"ddl": [*found.statements, *found.finish], "rows": rows})
