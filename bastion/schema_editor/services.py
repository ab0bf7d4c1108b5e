"""Creating a table: the checks that need the database and the user's grants, the preview, and the run.

Views call ``editor_for`` (what the form may offer), ``prepare`` (check a definition
and compile its statement) and ``create_table`` (run it). ``create_table`` trusts
nothing from the view: it checks the grant, the whole definition and the preview
token again, then runs the one CREATE TABLE statement

- on PostgreSQL and SQLite inside a transaction, with the audit event written
  before the commit (if the event cannot be written, no table is left behind);
- on MySQL/MariaDB, whose DDL commits by itself, as a single statement (it creates
  the whole table or nothing), audited right after;
- under the statement time limit (bastion.connections.limits),

and forgets the reflected catalogue afterwards. Database errors become one short
message; a name that is taken is reported without confirming what took it (T02).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pymysql
from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from sqlalchemy import Connection as SAConnection
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.schema import CreateTable

from bastion.access.models import Action, ColumnMode
from bastion.access.policy import Resource, check, column_modes, visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits, reflection
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason, one_line, safe_message
from bastion.connections.models import Connection
from bastion.explorer.schema import TableNotFound, dialect_name, resolve_table
from bastion.schema_editor import definition
from bastion.schema_editor.definition import ForeignKeySpec, TableSpec
from bastion.schema_editor.identifiers import name_problem, table_key

TABLE_CREATED = "schema.table_created"
PREVIEW_SALT = "bastion.schema_editor.preview"
PREVIEW_MAX_AGE = 600  # seconds a preview may be confirmed for
NAME_TAKEN = "This name cannot be used for a new table here; choose another."
_PG_DUPLICATE_OBJECT = frozenset({"42P07", "42710"})  # duplicate_table, duplicate_object
_MYSQL_TABLE_EXISTS = 1050


class NotPermitted(Exception):
    """The user may not create tables in this schema."""


class DefinitionRefused(Exception):
    """The definition cannot be created as it is; ``problems`` says why, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


class PreviewMismatch(Exception):
    """The confirmed preview is not the statement this definition gives now (changed, expired or forged)."""


class CreateFailed(Exception):
    """The database refused the statement; ``str()`` is a short message safe to show. Nothing was created."""


@dataclass(frozen=True)
class Editor:
    """What the new-table form of one schema may offer its user."""

    connection: Connection
    schema: str | None  # as the request named it (None: the default schema)
    dialect: Any  # the connected engine's SQLAlchemy dialect
    referable_tables: list[str]  # tables whose keys the user may refer to


@dataclass(frozen=True)
class Prepared:
    """A checked definition and the exact statement it gives."""

    spec: TableSpec
    table: Table
    sql: str


def schema_resource(connection_id: int, schema: str | None) -> Resource:
    return Resource(connection_id, schema or None)


def may_create(user: Any, connection: Connection, schema: str | None) -> bool:
    return check(user, Action.ALTER, schema_resource(connection.pk, schema))


def connected_dialect(connection: Connection) -> Any:
    # Compile with a dialect that has met its server: some renderings (MySQL backslash escapes, PostgreSQL
    # standard_conforming_strings) are settled at the first connection of the engine.
    with get_engine(connection).connect() as conn:
        return conn.dialect


def editor_for(user: Any, connection: Connection, schema: str | None) -> Editor:
    """The form's context for ``schema`` of ``connection``; LookupError when there is no such schema.

    Raises the connection's own errors (unreachable, disabled) for the caller to show.
    """
    if schema is not None and schema not in reflection.schema_names(connection):
        raise LookupError(schema)
    return Editor(connection, schema, connected_dialect(connection), referable_tables(user, connection, schema))


def referable_tables(user: Any, connection: Connection, schema: str | None) -> list[str]:
    """Tables of ``schema`` a new foreign key may point at: those the user may view (rows, or some columns)."""
    names = visible_tables(user, connection.pk, schema, reflection.table_names(connection, schema))
    return [name for name in names if check(user, Action.VIEW, Resource(connection.pk, schema, name))]


# --- checks that need the database -------------------------------------------------------------------
def table_name_problem(user: Any, connection: Connection, schema: str | None, name: str) -> str | None:
    """Is ``name`` taken in the schema? Said plainly only when the user may see what takes it."""
    dialect = dialect_name(connection)
    wanted = table_key(name, dialect)
    taken = [existing for existing in reflection.table_names(connection, schema) + reflection.view_names(
        connection, schema) if table_key(existing, dialect) == wanted]
    if not taken:
        return None
    if visible_tables(user, connection.pk, schema, taken):
        return f"A table or view named “{taken[0]}” already exists."
    return NAME_TAKEN


def resolve_foreign_key(user: Any, connection: Connection, schema: str | None, fk: ForeignKeySpec) -> \
        tuple[ForeignKeySpec | None, str | None]:
    """``fk`` with its referred column named, or a problem. Only tables the user may view and key columns they
    see in clear can be referred to; anything else reads as not there (T31)."""
    missing = f"there is no table “{fk.referred_table}” you can refer to."
    if fk.referred_table not in referable_tables(user, connection, schema):
        return None, missing
    try:
        info = resolve_table(connection, schema, fk.referred_table)
    except TableNotFound:
        return None, missing
    if info.is_view:
        return None, missing
    views = column_modes(user, connection.pk, schema, info.name, info.column_names)
    clear = {name for name, view in views.items() if view.mode == ColumnMode.VISIBLE}
    primary = [c.name for c in info.columns if c.primary_key]
    keys = [primary] if primary else []
    keys += reflection.unique_keys(connection, schema, info.name)
    single = [key[0] for key in keys if len(key) == 1 and key[0] in clear]
    if not fk.referred_column:
        if len(primary) == 1 and primary[0] in clear:
            return replace(fk, referred_column=primary[0]), None
        return None, (f"“{info.name}” has no one-column primary key you can see: name the key column it refers to"
                      + (f" ({', '.join(single)})." if single else "."))
    if fk.referred_column not in single:
        listed = f" Its key columns you can see: {', '.join(single)}." if single else ""
        return None, f"“{fk.referred_column}” is not a one-column key of “{info.name}” that you can see.{listed}"
    return fk, None


def vet(user: Any, connection: Connection, spec: TableSpec) -> TableSpec:
    """``spec`` checked against the engine's rules, the catalogue and the user's grants, with every foreign key's
    referred column named; DefinitionRefused with every problem otherwise."""
    dialect = dialect_name(connection)
    found = definition.problems(spec, dialect)
    if name_problem(spec.name, dialect, table=True) is None:
        taken = table_name_problem(user, connection, spec.schema, spec.name)
        if taken:
            found.append(f"Table name: {taken}")
    resolved = []
    for number, fk in enumerate(spec.foreign_keys, start=1):
        if not fk.referred_table:
            continue  # reported by definition.problems
        fk_resolved, problem = resolve_foreign_key(user, connection, spec.schema, fk)
        if problem:
            found.append(f"Foreign key {number}: {problem}")
        elif fk_resolved is not None:
            resolved.append(fk_resolved)
    if found:
        raise DefinitionRefused(found)
    return replace(spec, foreign_keys=tuple(resolved))


def prepare(user: Any, connection: Connection, spec: TableSpec, dialect: Any = None) -> Prepared:
    """Check ``spec`` (vet) and compile its CREATE TABLE for the connection's engine."""
    if not may_create(user, connection, spec.schema):
        raise NotPermitted("You may not create tables here.")
    checked = vet(user, connection, spec)
    table = definition.build_table(checked, dialect_name(connection))
    try:
        sql = definition.create_table_sql(table, dialect or connected_dialect(connection))
    except SQLAlchemyError as exc:  # a definition SQLAlchemy cannot write for this engine
        raise DefinitionRefused([f"This definition cannot be written for this database: {one_line(str(exc))}"]) \
            from None
    return Prepared(checked, table, sql)


# --- the preview token -------------------------------------------------------------------------------
def _preview_claims(user: Any, connection: Connection, schema: str | None, sql: str) -> dict[str, Any]:
    return {"user": user.pk, "connection": connection.pk, "schema": schema,
            "sql": hashlib.sha256(sql.encode("utf-8")).hexdigest()}


def preview_token(user: Any, connection: Connection, prepared: Prepared) -> str:
    """A signed, short-lived token of the statement shown, for this user, connection and schema."""
    return signing.dumps(_preview_claims(user, connection, prepared.spec.schema, prepared.sql), salt=PREVIEW_SALT)


def check_preview(token: str, user: Any, connection: Connection, prepared: Prepared) -> None:
    """PreviewMismatch unless ``token`` was made for exactly this statement (by preview_token, not too long ago)."""
    try:
        claims = signing.loads(token, salt=PREVIEW_SALT, max_age=PREVIEW_MAX_AGE)
    except signing.SignatureExpired:
        raise PreviewMismatch("The preview is more than ten minutes old. Check the statement below and confirm "
                              "again.") from None
    except signing.BadSignature:
        raise PreviewMismatch("Create the table from its preview: check the statement below and confirm.") from None
    if claims != _preview_claims(user, connection, prepared.spec.schema, prepared.sql):
        raise PreviewMismatch("The definition changed after the preview, so nothing was created. Check the new "
                              "statement below and confirm again.")


# --- running -----------------------------------------------------------------------------------------
def _target(connection: Connection, spec: TableSpec) -> str:
    return f"{connection.name}: {spec.schema + '.' if spec.schema else ''}{spec.name}"


def _details(connection: Connection, spec: TableSpec) -> dict[str, Any]:
    return {"connection_id": connection.pk, "schema": spec.schema, "table": spec.name}


def _failure_message(exc: DBAPIError) -> str:
    original: Any = exc.orig
    if limits.is_timeout(exc):
        return ("The database did not finish in time (another session may hold a lock on a table this one refers "
                "to). Nothing was created; try again.")
    if isinstance(original, psycopg.Error):
        if original.sqlstate in _PG_DUPLICATE_OBJECT:
            return NAME_TAKEN
        return f"The database refused the table: {engine_reason(exc)}"
    if isinstance(original, pymysql.MySQLError) and original.args and original.args[0] == _MYSQL_TABLE_EXISTS:
        return NAME_TAKEN
    text = safe_message(exc)
    if "already exists" in text or "there is already" in text:  # SQLite: a table, view or index of that name
        return NAME_TAKEN
    return f"The database refused the table: {text}"


def _begin(conn: SAConnection) -> None:
    if conn.dialect.name == "sqlite":
        # Python's sqlite3 opens transactions only before INSERT/UPDATE/DELETE, so the DDL would be committed at
        # once; an explicit BEGIN makes it part of the transaction (and takes the write lock now).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_table(user: Any, request: HttpRequest | None, connection: Connection, spec: TableSpec,
                 token: str) -> TableSpec:
    """Create the table ``spec`` describes, if ``token`` is the preview of exactly its statement; the checked spec.

    NotPermitted, DefinitionRefused, PreviewMismatch: nothing ran. CreateFailed: the database refused the
    statement and nothing was created (audited as a failure).
    """
    if not may_create(user, connection, spec.schema):
        raise NotPermitted("You may not create tables here.")
    with get_engine(connection).connect() as conn:
        # Checked and compiled on the connection that runs it: what runs is what the token was made for.
        prepared = prepare(user, connection, spec, dialect=conn.dialect)
        check_preview(token, user, connection, prepared)
        try:
            _run(conn, request, user, connection, prepared)
        except DBAPIError as exc:
            failure = exc
        else:
            failure = None
    reflection.invalidate(connection)  # also after a failure: the catalogue may have been out of date
    if failure is not None:
        message = _failure_message(failure)
        record(TABLE_CREATED, request=request, actor=user, target=_target(connection, prepared.spec),
               outcome=Outcome.FAILURE, details={**_details(connection, prepared.spec), "error": message},
               after={"ddl": prepared.sql})
        raise CreateFailed(message)
    return prepared.spec


def _run(conn: SAConnection, request: HttpRequest | None, user: Any, connection: Connection,
         prepared: Prepared) -> None:
    """The statement in a transaction (where the engine has transactional DDL), audited before the commit."""
    spec = prepared.spec
    with conn.begin():
        _begin(conn)
        with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
            conn.execute(CreateTable(prepared.table))  # compiles to prepared.sql: same table, same dialect
        record(TABLE_CREATED, request=request, actor=user, target=_target(connection, spec),
               details=_details(connection, spec),
               after={"ddl": prepared.sql, **definition.describe(spec, prepared.table, conn.dialect)})
