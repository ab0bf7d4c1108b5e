"""Altering an existing table: the preview and the run (T02, T20, T33).

``plan`` checks one change (alter_checks.vet) against the live table and renders its
statements with Alembic; ``run`` trusts nothing from the view: inside one transaction
(PostgreSQL, SQLite; the SQLite file is locked by BEGIN IMMEDIATE) it reflects the table
again, checks the change again, renders it again and runs it only when that is the
preview the user confirmed (the signed token), then writes the audit event before the
commit. MySQL/MariaDB commit each ALTER by themselves: every change offered there is a
single statement, audited right after it ran.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import psycopg
import pymysql
from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from sqlalchemy import Connection as SAConnection
from sqlalchemy import ForeignKeyConstraint, MetaData, Table, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits, reflection
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason, one_line, safe_message
from bastion.explorer.schema import TableInfo
from bastion.schema_editor import alterations, drop, services
from bastion.schema_editor.alter_checks import NotPermitted, Refused, may_alter, seen_columns, vet
from bastion.schema_editor.alterations import (
    Change,
    RenameTable,
)
from bastion.schema_editor.live_table import check_keys, rebuilding, reflect, sqlite_rebuild_problem

TABLE_ALTERED = "schema.table_altered"
LOCK_WAIT_SECONDS = 3  # PostgreSQL: how long a change waits for the table's lock
_PG_LOCK_NOT_AVAILABLE = "55P03"
TABLE_IN_USE = ("Another session is using this table, so the change could not start. Nothing was changed; try "
                "again in a moment.")
PREVIEW_SALT = "bastion.schema_editor.alter"


class PreviewMismatch(Exception):
    """What would run now is not the preview the user confirmed (the table or the form changed, or expired)."""


class AlterFailed(Exception):
    """The database refused; ``str()`` is a short message safe to show. Nothing was changed (MySQL: see module)."""



@dataclass(frozen=True)
class Planned:
    change: Change
    current: Table  # the table as reflected for this plan
    statements: list[str]
    copies_table: bool  # SQLite rebuilds the table (copy, drop, rename)
    dropped_indexes: list[str]



# --- preview ----------------------------------------------------------------------------------------------
def _planned(conn: SAConnection, user: Any, info: TableInfo, change: Change) -> Planned:
    current = reflect(conn, info)
    checked = vet(user, info, current, change)
    copies = alterations.copies_table(checked, conn.dialect.name)
    if copies:
        if len(seen_columns(user, info, [c.name for c in current.c])) != len(current.c):
            raise Refused("SQLite rebuilds the whole table for this change, including columns your role does not "
                          "show in clear, so only someone who sees every column can make it. Nothing was changed.")
        problem = sqlite_rebuild_problem(conn, info, current)
        if problem:
            raise Refused(problem)
    try:
        statements = alterations.render(checked, current, conn.dialect)
    except (SQLAlchemyError, NotImplementedError, ValueError) as exc:
        raise Refused(f"This change cannot be written for this database: {one_line(str(exc))}") from None
    return Planned(checked, current, statements, copies, alterations.dropped_indexes(checked, current))


def plan(user: Any, info: TableInfo, change: Change) -> Planned:
    """Check ``change`` and render its statements; nothing runs."""
    if not may_alter(user, info):
        raise NotPermitted("You may not change this table.")
    with get_engine(info.connection).connect() as conn:
        try:
            return _planned(conn, user, info, change)
        finally:
            conn.rollback()


def canonical(statements: list[str]) -> list[list[str]]:
    """``statements`` with each one's lines, and the statements, sorted: SQLAlchemy writes a rebuilt table's
    constraints, and Alembic its indexes, in the order of a set, which changes from one reflection to the next;
    the same clauses and indexes in another order are the same change (the steps themselves always come in
    Alembic's order: create the copy, fill it, drop the old table, rename)."""
    return sorted(sorted(line.strip().rstrip(",").strip() for line in statement.splitlines())
                  for statement in statements)


def _claims(user: Any, info: TableInfo, planned: Planned) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps({"change": type(planned.change).__name__, **asdict(planned.change),
                                        "sql": canonical(planned.statements)}, default=str,
                                       sort_keys=True).encode())
    return {"user": user.pk, "connection": info.connection.pk, "schema": info.schema, "table": info.name,
            "plan": digest.hexdigest()}


def preview_token(user: Any, info: TableInfo, planned: Planned) -> str:
    return signing.dumps(_claims(user, info, planned), salt=PREVIEW_SALT)


def check_token(token: str, user: Any, info: TableInfo, planned: Planned) -> None:
    try:
        claims = signing.loads(token, salt=PREVIEW_SALT, max_age=services.PREVIEW_MAX_AGE)
    except signing.SignatureExpired:
        raise PreviewMismatch("The preview is more than ten minutes old. Check the statements below and confirm "
                              "again.") from None
    except signing.BadSignature:
        raise PreviewMismatch("Confirm the change from its preview: check the statements below.") from None
    if claims != _claims(user, info, planned):
        raise PreviewMismatch("The table or the change is not what the preview showed, so nothing was changed. "
                              "Check the statements below and confirm again.")



# --- running ----------------------------------------------------------------------------------------------
def target_label(info: TableInfo) -> str:
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def _failure_message(exc: DBAPIError) -> str:
    original: Any = exc.orig
    if limits.is_timeout(exc):
        return ("The database did not finish in time (another session may hold a lock on this table). Nothing "
                "was changed; try again.")
    if isinstance(original, psycopg.Error) and original.sqlstate == _PG_LOCK_NOT_AVAILABLE:
        return TABLE_IN_USE
    if isinstance(original, psycopg.Error | pymysql.MySQLError):
        return f"The database refused the change: {engine_reason(exc)}"
    return f"The database refused the change: {safe_message(exc)}"


def _described(conn: SAConnection, info: TableInfo, name: str) -> dict[str, Any]:
    """The table's definition as it is on ``conn`` (after the change, before the commit), for the audit log."""
    try:
        table = Table(name, MetaData(), schema=info.schema, autoload_with=conn)
    except SQLAlchemyError as exc:  # the change ran: its event is written even if the table cannot be described
        return {"table": name, "not_described": one_line(str(exc))}
    return {
        "table": name,
        "columns": [{"name": c.name, "type": _type_text(c.type, conn.dialect), "nullable": c.nullable,
                     "default": None if c.server_default is None else str(getattr(c.server_default, "arg", "")),
                     "primary_key": c.primary_key} for c in table.c],
        "indexes": [{"name": i.name, "columns": [c.name for c in i.columns], "unique": bool(i.unique)}
                    for i in table.indexes],
        "foreign_keys": [{"name": fk.name, "columns": list(fk.column_keys), "referred_table": fk.referred_table.name,
                          "on_delete": fk.ondelete, "on_update": fk.onupdate}
                         for fk in table.constraints if isinstance(fk, ForeignKeyConstraint)],
    }


def _type_text(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except SQLAlchemyError:  # a type SQLAlchemy does not know (MariaDB's POINT, INET6, ...)
        return type(type_).__name__


def _details(info: TableInfo, change: Change) -> dict[str, Any]:
    return {"connection_id": info.connection.pk, "schema": info.schema, "table": info.name,
            "change": type(change).__name__, **{k: v for k, v in asdict(change).items() if k != "label"}}


def run(user: Any, request: HttpRequest | None, info: TableInfo, change: Change, token: str, *,
        approved: dict[str, Any] | None = None) -> str:
    """Make ``change`` if ``token`` is the preview of exactly the statements it gives now; the table's name after.
    ``approved``: who approved it under the two-person rule, for the change's event.

    NotPermitted, Refused, PreviewMismatch: nothing ran. AlterFailed: the database refused and nothing was
    changed (audited as a failure).
    """
    if not may_alter(user, info):
        raise NotPermitted("You may not change this table.")
    before = drop.definition(info)
    failure: DBAPIError | None = None
    with get_engine(info.connection).connect() as conn:
        try:
            planned = _run(conn, request, user, info, change, token, before, approved or {})
        except DBAPIError as exc:
            failure = exc
    reflection.invalidate(info.connection)  # also after a failure: the catalogue may have been out of date
    if failure is not None:
        message = _failure_message(failure)
        record(TABLE_ALTERED, request=request, actor=user, target=target_label(info), outcome=Outcome.FAILURE,
               details={**_details(info, change), **(approved or {}), "error": message}, before=before)
        raise AlterFailed(message)
    return planned.change.new_name if isinstance(planned.change, RenameTable) else info.name


def _run(conn: SAConnection, request: HttpRequest | None, user: Any, info: TableInfo, change: Change, token: str,
         before: dict[str, Any], approved: dict[str, Any]) -> Planned:
    transactional = conn.dialect.name in ("postgresql", "sqlite")
    ran: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        ran.append(statement)

    rebuild = alterations.copies_table(change, conn.dialect.name)
    with rebuilding(conn) if rebuild else nullcontext(), conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # DDL inside the transaction, and the file locked from here
        elif conn.dialect.name == "postgresql":
            # ALTER waits for an exclusive lock, and every reader of the table queues behind the waiting ALTER:
            # give up soon rather than stall the table for everyone.
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'")
        planned = _planned(conn, user, info, change)
        check_token(token, user, info, planned)
        event.listen(conn, "before_cursor_execute", note)
        try:
            with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
                alterations.run(conn, planned.change, planned.current)
        finally:
            event.remove(conn, "before_cursor_execute", note)
        if rebuild:
            check_keys(conn, info)
        if transactional:  # audited before the commit: no event, no change
            _audit(conn, request, user, info, planned, before, ran, approved)
    if not transactional:
        _audit(conn, request, user, info, planned, before, ran, approved)
    return planned



def _audit(conn: SAConnection, request: HttpRequest | None, user: Any, info: TableInfo, planned: Planned,
           before: dict[str, Any], ran: list[str], approved: dict[str, Any]) -> None:
    name = planned.change.new_name if isinstance(planned.change, RenameTable) else info.name
    record(TABLE_ALTERED, request=request, actor=user, target=target_label(info),
           details={**_details(info, planned.change), **approved},
           before=before, after={"ddl": planned.statements, "executed": ran, **_described(conn, info, name)})


