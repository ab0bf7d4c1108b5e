"""Altering an existing table: what the structure page shows, the checks, the preview and the run (T02, T20, T33).

``structure`` lists what the user may see of a table (columns, indexes, foreign keys;
anything that involves a hidden column is left out). ``plan`` checks one change
against the live table and the user's grants and renders its statements with
Alembic; ``run`` trusts nothing from the view: inside one transaction (PostgreSQL,
SQLite; the SQLite file is locked by BEGIN IMMEDIATE) it reflects the table again,
checks the change again, renders it again and runs it only when that is exactly the
preview the user confirmed (the signed token), then writes the audit event before
the commit. MySQL/MariaDB commit each ALTER by themselves: every change offered there
is a single statement, audited right after it ran.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any, NoReturn

import psycopg
import pymysql
from django.conf import settings
from django.core import signing
from django.db.models import Q
from django.http import HttpRequest
from sqlalchemy import Connection as SAConnection
from sqlalchemy import ForeignKeyConstraint, MetaData, Table, event, inspect, text
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SQLAlchemyError
from sqlglot.dialects.sqlite import SQLite
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from bastion.access.models import Action, ColumnMode, Grant
from bastion.access.policy import Resource, check, column_modes, visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import limits, reflection
from bastion.connections.engines import get_engine
from bastion.connections.errors import engine_reason, one_line, safe_message
from bastion.connections.sqlite_guard import foreign_keys_off
from bastion.explorer.schema import TableInfo, TableNotFound
from bastion.schema_editor import alterations, approvals, column_types, drop, services
from bastion.schema_editor.alterations import (
    AddColumn,
    AddForeignKey,
    AddIndex,
    AlterColumn,
    Change,
    DropColumn,
    DropForeignKey,
    DropIndex,
    RenameColumn,
    RenameTable,
)
from bastion.schema_editor.definition import ForeignKeySpec, column_problems
from bastion.schema_editor.identifiers import column_key, name_problem

TABLE_ALTERED = "schema.table_altered"
LOCK_WAIT_SECONDS = 3  # PostgreSQL: how long a change waits for the table's lock
_PG_LOCK_NOT_AVAILABLE = "55P03"
TABLE_IN_USE = ("Another session is using this table, so the change could not start. Nothing was changed; try "
                "again in a moment.")
PREVIEW_SALT = "bastion.schema_editor.alter"
NO_SUCH_COLUMN = "There is no such column in this table."
NAME_TAKEN = "This name cannot be used here; choose another."


class NotPermitted(Exception):
    """The user may not alter this table."""


class Refused(Exception):
    """The change cannot be made as asked; ``str()`` says why. Nothing ran."""


class PreviewMismatch(Exception):
    """What would run now is not the preview the user confirmed (the table or the form changed, or expired)."""


class AlterFailed(Exception):
    """The database refused; ``str()`` is a short message safe to show. Nothing was changed (MySQL: see module)."""


@dataclass(frozen=True)
class ShownIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool
    unique_constraint: bool


@dataclass(frozen=True)
class ShownForeignKey:
    number: int  # 1-based position among the table's foreign keys: how the form names one (SQLite's are unnamed)
    name: str | None
    columns: tuple[str, ...]
    referred_schema: str | None
    referred_table: str
    referred_columns: tuple[str, ...]


@dataclass(frozen=True)
class Structure:
    """What the structure page shows of one table: only what the user may see."""

    info: TableInfo
    columns: tuple[str, ...]  # the user may see them (clear or masked)
    indexes: tuple[ShownIndex, ...]
    foreign_keys: tuple[ShownForeignKey, ...]
    hidden_columns: int
    referable_tables: list[str]


@dataclass(frozen=True)
class Planned:
    change: Change
    current: Table  # the table as reflected for this plan
    statements: list[str]
    copies_table: bool  # SQLite rebuilds the table (copy, drop, rename)
    dropped_indexes: list[str]


# --- permission and what may be seen --------------------------------------------------------------------
def may_alter(user: Any, info: TableInfo) -> bool:
    return not info.is_view and check(user, Action.ALTER, Resource(info.connection.pk, info.schema, info.name)) \
        and bool(visible_tables(user, info.connection.pk, info.schema, [info.name]))


def _seen_columns(user: Any, info: TableInfo, names: list[str]) -> list[str]:
    """The columns of ``names`` the user sees in clear: only those can be changed or named (a change to a masked
    column could show its values in the engine's errors: a failed cast, a duplicate key)."""
    views = column_modes(user, info.connection.pk, info.schema, info.name, names)
    return [name for name in names if views[name].mode == ColumnMode.VISIBLE]


def _unique_constraint_names(info: TableInfo) -> set[str]:
    if info.dialect != "postgresql":
        return set()  # MySQL's UNIQUE keys are indexes; SQLite's automatic ones are not listed
    with get_engine(info.connection).connect() as conn:
        return {str(u["name"]) for u in inspect(conn).get_unique_constraints(info.name, schema=info.schema)
                if u.get("name")}


def _may_see_referred(user: Any, info: TableInfo, fk: dict[str, Any]) -> bool:
    """Is the table a foreign key refers to, and its referred columns, one the user sees in clear (T31)?"""
    schema = fk["referred_schema"] if fk["referred_schema"] is not None else info.schema
    if not visible_tables(user, info.connection.pk, schema, [fk["referred_table"]]):
        return False
    views = column_modes(user, info.connection.pk, schema, fk["referred_table"], fk["referred_columns"])
    return all(view.mode == ColumnMode.VISIBLE for view in views.values())


def structure(user: Any, info: TableInfo) -> Structure:
    """The table as the user may see it; NotPermitted when they may not alter it."""
    if not may_alter(user, info):
        raise NotPermitted("You may not change this table.")
    seen = _seen_columns(user, info, info.column_names)
    visible = set(seen)
    constraint_indexes = _unique_constraint_names(info)
    indexes = tuple(
        ShownIndex(index["name"], tuple(index["columns"]), bool(index["unique"]), index["name"] in constraint_indexes)
        for index in reflection.indexes(info.connection, info.schema, info.name)
        if index["name"] and index["columns"] and set(index["columns"]) <= visible)
    keys = tuple(
        ShownForeignKey(number, fk["name"], tuple(fk["constrained_columns"]), fk["referred_schema"],
                        fk["referred_table"], tuple(fk["referred_columns"]))
        for number, fk in enumerate(reflection.foreign_keys(info.connection, info.schema, info.name), start=1)
        if set(fk["constrained_columns"]) <= visible and _may_see_referred(user, info, fk))
    return Structure(info, tuple(seen), indexes, keys, len(info.columns) - len(seen),
                     services.referable_tables(user, info.connection, info.schema))


# --- the live table ---------------------------------------------------------------------------------------
_SQLITE_KEY_ACTIONS = text(
    "SELECT id, group_concat(\"from\", char(31)), \"table\", min(on_update), min(on_delete) "
    "FROM (SELECT * FROM pragma_foreign_key_list(:table) ORDER BY id, seq) GROUP BY id ORDER BY id")
_SQLITE_TABLE_SQL = text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table")
_SQLITE_TRIGGERS = text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table")
_SQLITE_INDEXES = text("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table AND sql IS NOT NULL")
# Read on the locked connection, not from the reflection cache: a table created meanwhile counts too.
_SQLITE_REFERRING = text(
    "SELECT DISTINCT m.name FROM sqlite_master AS m JOIN pragma_foreign_key_list(m.name) AS k "
    "WHERE m.type = 'table' AND lower(k.\"table\") = lower(:table)")
_SQLITE_KEY_CHECK = text("SELECT count(*) FROM pragma_foreign_key_check(:table)")
KEYS_BROKEN = ("The rebuilt table would break foreign keys (rows referring to rows that would not exist), so nothing "
               "was changed.")
_INDEX_EXTRAS = frozenset({TokenType.COLLATE, TokenType.DESC, TokenType.ASC, TokenType.WHERE})


def _index_has_more(sql: str) -> bool:
    """Does a CREATE INDEX hold more than plain column names (expressions, COLLATE, ASC/DESC, WHERE)?"""
    tokens = _tokens(sql)
    opened = [t for t in tokens if t.token_type == TokenType.L_PAREN]
    return len(opened) > 1 or any(t.token_type in _INDEX_EXTRAS for t in tokens)


def reflect(conn: SAConnection, info: TableInfo) -> Table:
    """The table as the database holds it now, read on ``conn`` (inside the caller's transaction)."""
    try:
        table = Table(info.name, MetaData(), schema=info.schema, autoload_with=conn)
    except NoSuchTableError:
        raise Refused("This table no longer exists.") from None
    if conn.dialect.name == "sqlite":
        _sqlite_complete(conn, table)
    elif conn.dialect.name == "mysql":
        _mysql_check(conn, info, table)
    return table


_MYSQL_NAMES = text(
    "SELECT 'column', COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = coalesce(:schema, "
    "DATABASE()) AND TABLE_NAME = :table UNION ALL SELECT DISTINCT 'index', INDEX_NAME FROM "
    "information_schema.STATISTICS WHERE TABLE_SCHEMA = coalesce(:schema, DATABASE()) AND TABLE_NAME = :table "
    "AND INDEX_NAME <> 'PRIMARY' UNION ALL SELECT 'key', CONSTRAINT_NAME FROM "
    "information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = coalesce(:schema, DATABASE()) "
    "AND TABLE_NAME = :table")


def _mysql_check(conn: SAConnection, info: TableInfo, table: Table) -> None:
    """SQLAlchemy reads a MySQL table from SHOW CREATE TABLE, and misreads names holding a backtick (it keeps
    them doubled, or drops the key). A change built from a misread name would touch another column or fail, so
    the names it read must be exactly the catalogue's."""
    catalogue: dict[str, set[str]] = {"column": set(), "index": set(), "key": set()}
    for kind, name in conn.execute(_MYSQL_NAMES, {"schema": info.schema, "table": info.name}):
        catalogue[str(kind)].add(str(name))
    keys = {c.name for c in table.constraints if isinstance(c, ForeignKeyConstraint)}
    read = {"column": {c.name for c in table.c}, "index": {i.name for i in table.indexes if i.name}, "key": keys}
    # MySQL lists a foreign key's own index among the indexes; SQLAlchemy does not.
    if read["column"] != catalogue["column"] or read["key"] != catalogue["key"] \
            or not read["index"] <= catalogue["index"] or not catalogue["index"] - read["index"] <= keys:
        raise Refused("Bastion cannot read this table's definition exactly (a name holds a backtick, which "
                      "SQLAlchemy misreads on MySQL), so it changes nothing here.")


def _sqlite_complete(conn: SAConnection, table: Table) -> None:
    """What SQLAlchemy's SQLite reflection leaves out and a rebuild must keep: foreign key actions written
    beside a column (``REFERENCES p ON DELETE CASCADE``) and AUTOINCREMENT."""
    by_key: dict[tuple[Any, ...], list[tuple[str, str]]] = {}
    for _id, columns, referred, on_update, on_delete in conn.execute(_SQLITE_KEY_ACTIONS, {"table": table.name}):
        by_key.setdefault((columns, referred.lower()), []).append((on_update, on_delete))
    for constraint in [c for c in table.constraints if isinstance(c, ForeignKeyConstraint)]:
        found = by_key.get(("\x1f".join(constraint.column_keys), constraint.referred_table.name.lower()), [])
        if len(set(found)) != 1:
            table.info["sqlite_unpaired_keys"] = True  # two keys alike with different actions: not rebuilt
            continue
        on_update, on_delete = found[0]
        constraint.ondelete = None if on_delete == "NO ACTION" else on_delete
        constraint.onupdate = None if on_update == "NO ACTION" else on_update
    sql = conn.execute(_SQLITE_TABLE_SQL, {"table": table.name}).scalar_one_or_none() or ""
    table.info["sqlite_autoincrement"] = any(t.token_type == TokenType.AUTO_INCREMENT for t in _tokens(sql))
    table.info["sqlite_sql"] = sql


def _tokens(sql: str) -> list[Any]:
    return SQLite().tokenize(sql)


_NOT_COMPARED = {TokenType.STRING, TokenType.NUMBER, TokenType.L_PAREN, TokenType.R_PAREN, TokenType.COMMA,
                 TokenType.SEMICOLON, *Parser.TYPE_TOKENS}


def _words(sql: str) -> Counter[str]:
    tokens = _tokens(sql)
    words: Counter[str] = Counter(t.text.upper() for t in tokens[3:] if t.token_type not in _NOT_COMPARED)
    return words  # tokens[:3]: CREATE TABLE <name> (the rebuilt copy has another name)


def sqlite_rebuild_problem(conn: SAConnection, info: TableInfo, current: Table) -> str | None:
    """Why SQLite cannot rebuild ``current`` safely; None when it can.

    A rebuild drops the table: its triggers would be lost, and any part of the definition
    that SQLAlchemy does not reflect (COLLATE, generated columns, WITHOUT ROWID, STRICT,
    index expressions, ...) would be lost. The definition is compared word for word with a
    rebuild that changes nothing. (Keys that refer to the table are safe: the rebuild runs
    with foreign keys off, see _rebuilding, and checks them all before it commits.)
    """
    if current.info.get("sqlite_unpaired_keys"):
        return ("SQLite has to rebuild this table for this change, and Bastion cannot tell its foreign keys' "
                "ON DELETE / ON UPDATE rules apart. Nothing was changed.")
    if any(_index_has_more(sql) for sql in conn.execute(_SQLITE_INDEXES, {"table": info.name}).scalars()):
        return ("SQLite has to rebuild this table for this change, and one of its indexes uses an expression, "
                "COLLATE, a sort order or WHERE, which the rebuild would not carry over. Nothing was changed.")
    if conn.execute(_SQLITE_TRIGGERS, {"table": info.name}).scalar_one():
        return ("SQLite has to rebuild this table for this change, and its triggers would be lost. Nothing was "
                "changed.")
    lost = _words(current.info.get("sqlite_sql", "")) - _words(alterations.rebuilt_definition(current, conn.dialect))
    if lost:
        listed = ", ".join(sorted(lost))
        return (f"SQLite has to rebuild this table for this change, and Bastion cannot carry over every part of its "
                f"definition ({one_line(listed, limit=200)}). Nothing was changed.")
    return None


# --- checks ---------------------------------------------------------------------------------------------
MASKED_COLUMN = "Only columns your role shows in clear can be changed here."


def _column_of(user: Any, info: TableInfo, current: Table, name: str) -> str:
    """``name`` if the table has that column and the user sees it in clear (a hidden one reads as missing)."""
    if name not in current.c:
        raise Refused(NO_SUCH_COLUMN)
    mode = column_modes(user, info.connection.pk, info.schema, info.name, [name])[name].mode
    if mode != ColumnMode.VISIBLE:
        raise Refused(MASKED_COLUMN if mode == ColumnMode.MASKED else NO_SUCH_COLUMN)
    return name


def _new_column_name(user: Any, info: TableInfo, current: Table, name: str) -> None:
    problem = name_problem(name, info.dialect, table=False)
    if problem:
        raise Refused(problem)
    wanted = column_key(name, info.dialect)
    taken = [c.name for c in current.c if column_key(c.name, info.dialect) == wanted]
    if taken:
        raise Refused(f"The table already has a column “{taken[0]}”." if _seen_columns(user, info, taken)
                      else NAME_TAKEN)


GRANTS_NAME_IT = ("Grants of some roles name this {what}; renaming it would leave them behind (a hidden or masked "
                  "column would show). An administrator must remove those grants first. Nothing was changed.")


def _named_by_grants(info: TableInfo, column: str | None = None) -> bool:
    """Does any grant name this table (or this column of it)? Grants follow names, not objects."""
    grants = Grant.objects.filter(Q(connection=info.connection) | Q(connection__isnull=True), table=info.name)
    return (grants.filter(column=column) if column is not None else grants).exists()


def _refuse_generated(current: Table, name: str) -> None:
    column = current.c[name]
    if column.computed is not None or column.identity is not None:
        raise Refused("Generated and identity columns cannot be changed here.")


_MYSQL_COLUMN_EXTRAS = text(
    "SELECT c.DATA_TYPE, c.EXTRA, (SELECT count(*) FROM information_schema.CHECK_CONSTRAINTS AS k "
    "WHERE k.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME) "
    "FROM information_schema.COLUMNS AS c WHERE c.TABLE_SCHEMA = coalesce(:schema, DATABASE()) "
    "AND c.TABLE_NAME = :table AND c.COLUMN_NAME = :column")


def _refuse_mysql_rewrite(info: TableInfo, current: Table, name: str) -> None:
    """MySQL alters a column (MODIFY) by writing it out again from reflection, which loses CHECK constraints
    (and MariaDB's JSON validation), INVISIBLE and ENUM/SET values with backslashes: refuse those columns."""
    if info.dialect != "mysql":
        return
    with get_engine(info.connection).connect() as conn:
        found = conn.execute(_MYSQL_COLUMN_EXTRAS, {"schema": info.schema, "table": current.name,
                                                    "column": name}).first()
    if found is None:
        raise Refused(NO_SUCH_COLUMN)
    data_type, extra, checks = found
    if str(data_type).lower() in ("enum", "set") or "invisible" in str(extra).lower() or checks:
        raise Refused("MySQL and MariaDB rewrite the whole column for this change, and Bastion cannot carry over "
                      "everything this one has (ENUM/SET values, CHECK constraints, INVISIBLE). Nothing was "
                      "changed.")


def vet(user: Any, info: TableInfo, current: Table, change: Change) -> Change:
    """``change`` checked against the live table and the user's grants (Refused otherwise); foreign keys come
    back with their referred column named."""
    dialect = info.dialect
    if isinstance(change, AddColumn):
        spec = change.column
        if spec.primary_key or spec.autoincrement:
            raise Refused("A column added to a table cannot be its primary key here.")
        problems = column_problems(spec, dialect)
        if problems:
            raise Refused(" ".join(problems))
        _new_column_name(user, info, current, spec.name)
    elif isinstance(change, RenameColumn):
        _column_of(user, info, current, change.column)
        _refuse_generated(current, change.column)
        if _named_by_grants(info, change.column):
            raise Refused(GRANTS_NAME_IT.format(what="column"))
        if change.new_name == change.column:
            raise Refused("The new name is the column's name already.")
        _new_column_name(user, info, current, change.new_name)
    elif isinstance(change, DropColumn):
        _column_of(user, info, current, change.column)
        if len(current.c) == 1:
            raise Refused("This is the table's only column: drop the table instead.")
    elif isinstance(change, AlterColumn):
        _vet_alter_column(user, info, current, change)
    elif isinstance(change, RenameTable):
        if _named_by_grants(info):
            raise Refused(GRANTS_NAME_IT.format(what="table"))
        problem = name_problem(change.new_name, dialect, table=True) or services.table_name_problem(
            user, info.connection, info.schema, change.new_name)
        if problem:
            raise Refused(problem)
    elif isinstance(change, AddIndex):
        _vet_add_index(user, info, current, change)
    elif isinstance(change, DropIndex):
        found = next((index for index in structure(user, info).indexes if index.name == change.name), None)
        if found is None:
            raise Refused("There is no such index on this table.")
        return replace(change, unique_constraint=found.unique_constraint)
    elif isinstance(change, AddForeignKey):
        return _vet_add_foreign_key(user, info, current, change)
    elif isinstance(change, DropForeignKey):
        shown = {(fk.name, fk.columns, fk.referred_table) for fk in structure(user, info).foreign_keys}
        if (change.name, change.columns, change.referred_table) not in shown:
            raise Refused("There is no such foreign key on this table.")
    return change


def _vet_alter_column(user: Any, info: TableInfo, current: Table, change: AlterColumn) -> None:
    column = current.c[_column_of(user, info, current, change.column)]
    _refuse_generated(current, change.column)
    _refuse_mysql_rewrite(info, current, change.column)
    if change.changes_nothing:
        raise Refused("Choose what to change: the type, NULL or the default.")
    if change.type:
        kind = column_types.BY_KEY.get(change.type)
        if kind is None or info.dialect not in kind.dialects:
            raise Refused("Choose one of the listed types.")
        problem = column_types.size_problem(change.type, change.sizes)
        if problem:
            raise Refused(problem)
    if change.nullable and column.primary_key:
        raise Refused("A primary key column cannot allow NULL.")
    if change.default not in (alterations.KEEP, None):
        if column.autoincrement is True and column.primary_key:
            raise Refused("An autoincrement column takes no default.")
        try:
            column_types.parse_default(change.type or alterations.type_key_of(column), change.default, change.sizes)
        except ValueError as exc:
            raise Refused(str(exc)) from None


MAX_INDEX_COLUMNS = 16


def _vet_add_index(user: Any, info: TableInfo, current: Table, change: AddIndex) -> None:
    problem = name_problem(change.name, info.dialect, table=True)
    if problem:
        raise Refused(f"Index name: {problem}")
    if not change.columns:
        raise Refused("Choose at least one column for the index.")
    if len(change.columns) > MAX_INDEX_COLUMNS:
        raise Refused(f"An index is made here of at most {MAX_INDEX_COLUMNS} columns.")
    if len(set(change.columns)) != len(change.columns):
        raise Refused("A column can appear only once in an index.")
    for name in change.columns:
        _column_of(user, info, current, name)


def _vet_add_foreign_key(user: Any, info: TableInfo, current: Table, change: AddForeignKey) -> AddForeignKey:
    problem = name_problem(change.name, info.dialect, table=True)
    if problem:
        raise Refused(f"Foreign key name: {problem}")
    column = current.c[_column_of(user, info, current, change.column)]
    for action in (change.on_delete, change.on_update):
        if action not in ("", "RESTRICT", "CASCADE", "SET NULL"):
            raise Refused("Choose one of the listed ON DELETE / ON UPDATE actions.")
    if not column.nullable and "SET NULL" in (change.on_delete, change.on_update):
        raise Refused(f"SET NULL needs a column that allows NULL; “{column.name}” does not.")
    resolved, problem = services.resolve_foreign_key(user, info.connection, info.schema, ForeignKeySpec(
        change.column, change.referred_table, change.referred_column, change.on_delete, change.on_update))
    if problem or resolved is None:
        raise Refused(problem or "Choose the table it refers to.")
    return replace(change, referred_column=resolved.referred_column, referred_schema=info.schema)


# --- preview ----------------------------------------------------------------------------------------------
def _planned(conn: SAConnection, user: Any, info: TableInfo, change: Change) -> Planned:
    current = reflect(conn, info)
    checked = vet(user, info, current, change)
    copies = alterations.copies_table(checked, conn.dialect.name)
    if copies:
        if len(_seen_columns(user, info, [c.name for c in current.c])) != len(current.c):
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


def _check_token(token: str, user: Any, info: TableInfo, planned: Planned) -> None:
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
def _target(info: TableInfo) -> str:
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
        record(TABLE_ALTERED, request=request, actor=user, target=_target(info), outcome=Outcome.FAILURE,
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
    with _rebuilding(conn) if rebuild else nullcontext(), conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # DDL inside the transaction, and the file locked from here
        elif conn.dialect.name == "postgresql":
            # ALTER waits for an exclusive lock, and every reader of the table queues behind the waiting ALTER:
            # give up soon rather than stall the table for everyone.
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'")
        planned = _planned(conn, user, info, change)
        _check_token(token, user, info, planned)
        event.listen(conn, "before_cursor_execute", note)
        try:
            with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
                alterations.run(conn, planned.change, planned.current)
        finally:
            event.remove(conn, "before_cursor_execute", note)
        if rebuild:
            _check_keys(conn, info)
        if transactional:  # audited before the commit: no event, no change
            _audit(conn, request, user, info, planned, before, ran, approved)
    if not transactional:
        _audit(conn, request, user, info, planned, before, ran, approved)
    return planned


@contextmanager
def _rebuilding(conn: SAConnection) -> Iterator[None]:
    """SQLite's table rebuild with foreign keys off (set outside the transaction, as SQLite requires), so that
    dropping the old copy runs no ON DELETE rule of a table that refers to it; the pooled connection is
    replaced afterwards rather than trusted to have them on again."""
    conn.rollback()
    raw: Any = conn.connection.dbapi_connection
    try:
        with foreign_keys_off(raw):
            yield
    finally:
        conn.invalidate()


def _check_keys(conn: SAConnection, info: TableInfo) -> None:
    """Every key of the rebuilt table, and of the tables that refer to it, still finds its row (else Refused)."""
    tables = {info.name, *conn.execute(_SQLITE_REFERRING, {"table": info.name}).scalars()}
    if any(conn.execute(_SQLITE_KEY_CHECK, {"table": name}).scalar_one() for name in sorted(tables)):
        raise Refused(KEYS_BROKEN)


def _audit(conn: SAConnection, request: HttpRequest | None, user: Any, info: TableInfo, planned: Planned,
           before: dict[str, Any], ran: list[str], approved: dict[str, Any]) -> None:
    name = planned.change.new_name if isinstance(planned.change, RenameTable) else info.name
    record(TABLE_ALTERED, request=request, actor=user, target=_target(info),
           details={**_details(info, planned.change), **approved},
           before=before, after={"ddl": planned.statements, "executed": ran, **_described(conn, info, name)})


# --- dropping a column under the two-person rule ------------------------------------------------------
def needs_approval(user: Any, info: TableInfo, change: Change) -> bool:
    return isinstance(change, DropColumn) and approvals.needed(user, info.connection, approvals.DROP_COLUMN)


def ask_approval(user: Any, request: HttpRequest | None, info: TableInfo, change: Change, token: str) -> Any:
    """File a request for a second person to run ``change`` (a column drop) exactly as previewed; nothing runs.

    NotPermitted, Refused, PreviewMismatch as for run; approvals.Refused when the same request already waits.
    """
    if not may_alter(user, info):
        raise NotPermitted("You may not change this table.")
    planned = plan(user, info, change)
    _check_token(token, user, info, planned)
    return approvals.submit(user, request, info, approvals.DROP_COLUMN, planned.statements,
                            column=planned.change.column)


def _approval_failed(approval: Any, request: HttpRequest | None, info: TableInfo | None, message: str) -> NoReturn:
    """A refusal ``run`` does not audit itself (nothing ran): audited here as the change's failure."""
    record(TABLE_ALTERED, request=request, actor=approval.requester,
           target=_target(info) if info else approval.table, outcome=Outcome.FAILURE,
           details={"connection_id": approval.connection_id, "schema": approval.schema or None,
                    "table": approval.table, "change": "DropColumn", "column": approval.column,
                    "approval_id": approval.pk, "error": message})
    raise approvals.ExecutionFailed(message)


def _run_approved_drop_column(approval: Any, approver: Any, request: HttpRequest | None) -> str:
    """The approved column drop, under the requester's grants, only if it is still exactly the statements shown."""
    requester, change = approval.requester, DropColumn(approval.column)
    info = None
    try:
        info = approvals.table_info(approval)
        planned = plan(requester, info, change)
        if canonical(planned.statements) != canonical(list(approval.statements)):
            _approval_failed(approval, request, info, "The statements Bastion would run now are not the ones that "
                                                      "were approved, so nothing was run. The requester can ask again.")
        run(requester, request, info, change, preview_token(requester, info, planned),
            approved=approvals.approved_details(approval, approver))
    except AlterFailed as exc:  # run audited it
        raise approvals.ExecutionFailed(str(exc)) from None
    except NotPermitted:
        _approval_failed(approval, request, info, f"{requester.get_username()} may no longer change this table, so "
                                                  "nothing was changed.")
    except (Refused, PreviewMismatch, TableNotFound) as exc:
        _approval_failed(approval, request, info, str(exc) if not isinstance(exc, TableNotFound)
                         else "The table is no longer there, so nothing was run.")
    return f"Column “{approval.column}” dropped from “{approval.table}”."


approvals.EXECUTORS[approvals.DROP_COLUMN] = _run_approved_drop_column
