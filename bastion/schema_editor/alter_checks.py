"""What a user may see of a table's structure and whether a change to it may be made (T02, T20, T31).

``structure`` lists what the structure page shows (columns in clear, indexes and foreign
keys over them, to tables the user may see). ``vet`` checks one change against the live
table and the user's grants: only columns shown in clear can be changed or named (a change
to a masked column could show its values in the engine's errors), a hidden column reads as
missing, and nothing is renamed while grants name it (grants follow names).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.db.models import Q
from sqlalchemy import Table, inspect, text

from bastion.access.models import Action, ColumnMode, Grant
from bastion.access.policy import Resource, check, column_modes, visible_tables
from bastion.connections import reflection
from bastion.connections.engines import get_engine
from bastion.explorer.schema import TableInfo
from bastion.schema_editor import alterations, column_types, services
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

NO_SUCH_COLUMN = "There is no such column in this table."
NAME_TAKEN = "This name cannot be used here; choose another."


class NotPermitted(Exception):
    """The user may not alter this table."""


class Refused(Exception):
    """The change cannot be made as asked; ``str()`` says why. Nothing ran."""




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


# --- permission and what may be seen --------------------------------------------------------------------
def may_alter(user: Any, info: TableInfo) -> bool:
    return not info.is_view and check(user, Action.ALTER, Resource(info.connection.pk, info.schema, info.name)) \
        and bool(visible_tables(user, info.connection.pk, info.schema, [info.name]))


def seen_columns(user: Any, info: TableInfo, names: list[str]) -> list[str]:
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
    seen = seen_columns(user, info, info.column_names)
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
        raise Refused(f"The table already has a column “{taken[0]}”." if seen_columns(user, info, taken)
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


