"""Changes to an existing table, written as Alembic operations: the SQL to preview, and the same to run.

Each change is a small frozen dataclass. ``emit`` turns one into Alembic operations
against the table as reflected from the database (``current``), so every name is
quoted by the dialect and MySQL's full-column MODIFY/CHANGE keeps what it must
(type, NULL, default, AUTO_INCREMENT, comment). ``render`` runs the same operations
in Alembic's offline mode, which writes SQL instead of running it: the preview is
produced by exactly the code that later runs.

SQLite cannot alter a column's type, NULL or default, nor add or drop constraints, so
those changes go through Alembic's batch mode: a copy of the table is created with
the new definition, the rows are copied, the old table is dropped and the copy
renamed, inside the caller's transaction. ``copies_table`` says when that happens.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, ForeignKeyConstraint, MetaData, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement

from bastion.schema_editor import column_types
from bastion.schema_editor.column_types import Sizes
from bastion.schema_editor.definition import ColumnSpec


@dataclass(frozen=True)
class AddColumn:
    column: ColumnSpec  # neither primary key nor autoincrement (the form offers neither)
    label = "Add column"


@dataclass(frozen=True)
class RenameColumn:
    column: str
    new_name: str
    label = "Rename column"


@dataclass(frozen=True)
class DropColumn:
    column: str
    label = "Drop column"


KEEP = "keep"  # an AlterColumn part left as it is


@dataclass(frozen=True)
class AlterColumn:
    """A new type (type "" keeps it), NULL allowed or not (None keeps it), and default (KEEP, None: none)."""

    column: str
    type: str = ""
    sizes: Sizes = field(default_factory=Sizes)
    nullable: bool | None = None
    default: str | None = KEEP
    label = "Change column"

    @property
    def changes_nothing(self) -> bool:
        return not self.type and self.nullable is None and self.default == KEEP


@dataclass(frozen=True)
class RenameTable:
    new_name: str
    label = "Rename table"


@dataclass(frozen=True)
class AddIndex:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    label = "Add index"


@dataclass(frozen=True)
class DropIndex:
    name: str
    unique_constraint: bool = False  # PostgreSQL: the index of a UNIQUE constraint goes with the constraint
    label = "Drop index"


@dataclass(frozen=True)
class AddForeignKey:
    name: str
    column: str
    referred_schema: str | None
    referred_table: str
    referred_column: str
    on_delete: str = ""
    on_update: str = ""
    label = "Add foreign key"


@dataclass(frozen=True)
class DropForeignKey:
    """The foreign key ``number`` (1-based, in reflection order) over ``columns``; SQLite's have no name."""

    name: str | None
    columns: tuple[str, ...]
    referred_table: str = ""
    label = "Drop foreign key"


class _RenameColumnInPlace(ExecutableDDLElement):
    """ALTER TABLE t RENAME COLUMN a TO b, for MySQL 8 and MariaDB 10.5+, whose CHANGE (Alembic's way) writes
    the whole column out again from reflection and loses what reflection does not see (CHECK, INVISIBLE, ...)."""

    def __init__(self, table: Table, old: str, new: str) -> None:
        self.table, self.old, self.new = table, old, new


@compiles(_RenameColumnInPlace)
def _compile_rename_column(element: _RenameColumnInPlace, compiler: Any, **_: Any) -> str:
    preparer = compiler.preparer
    return (f"ALTER TABLE {preparer.format_table(element.table)} RENAME COLUMN {preparer.quote(element.old)} "
            f"TO {preparer.quote(element.new)}")


Change = (AddColumn | RenameColumn | DropColumn | AlterColumn | RenameTable | AddIndex | DropIndex
          | AddForeignKey | DropForeignKey)


def copies_table(change: Change, dialect: str) -> bool:
    """Does ``change`` rebuild the table (SQLite batch mode: copy, drop, rename)?"""
    return dialect == "sqlite" and isinstance(change, DropColumn | AlterColumn | AddForeignKey | DropForeignKey)


def _existing(column: Column[Any], dialect: Dialect) -> dict[str, Any]:
    """What Alembic needs to know of a column it alters (MySQL rewrites the whole column: type, NULL, default,
    comment and AUTO_INCREMENT, all of which it would otherwise lose)."""
    existing = {"existing_type": column.type, "existing_nullable": column.nullable,
                "existing_server_default": getattr(column.server_default, "arg", None),
                "existing_comment": column.comment}
    if dialect.name == "mysql":
        existing["existing_autoincrement"] = column.autoincrement is True
    return existing


def _new_type(change: AlterColumn) -> Any:
    return column_types.sa_type(change.type, change.sizes) if change.type else None


def _server_default(type_key: str, text: str, sizes: Sizes) -> Any:
    return column_types.server_default(type_key, column_types.parse_default(type_key, text, sizes))


def _alter_arguments(change: AlterColumn, column: Column[Any], dialect: Dialect) -> dict[str, Any]:
    arguments: dict[str, Any] = _existing(column, dialect)
    new_type = _new_type(change)
    if new_type is not None:
        arguments["type_"] = new_type
        if dialect.name == "postgresql":
            # A type PostgreSQL cannot convert by itself (text to integer) is converted by a cast; values that
            # do not convert make the whole change fail, and nothing is changed.
            compiled = new_type.compile(dialect=dialect)
            arguments["postgresql_using"] = f"{dialect.identifier_preparer.quote(column.name)}::{compiled}"
    if change.nullable is not None:
        arguments["nullable"] = change.nullable
    if change.default != KEEP:
        if change.default is None:
            arguments["server_default"] = None
        else:
            type_key = change.type or type_key_of(column)
            arguments["server_default"] = _server_default(type_key, change.default, change.sizes)
    return arguments


def type_key_of(column: Column[Any]) -> str:
    """The form's type for an existing column: how a new default for it is read (text when unsure)."""
    python_type: Any
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return "text"
    if python_type is bool:
        return "boolean"
    if python_type is int:
        return "bigint"
    if python_type is float:
        return "float"
    if python_type.__name__ == "Decimal":
        return "decimal"
    return "text"


def _covering_indexes(current: Table, column: str) -> list[str]:
    return sorted(index.name for index in current.indexes if index.name and column in index.columns)


def _copy_without(current: Table, drop: DropForeignKey | None) -> Table:
    """A copy of ``current`` to rebuild from, without the foreign key ``drop`` names (batch mode's copy_from)."""
    copy = current.to_metadata(MetaData())
    if drop is None:
        return copy
    chosen = next((_targets(c) for c in current.constraints if isinstance(c, ForeignKeyConstraint)
                   and tuple(c.column_keys) == drop.columns and c.referred_table.name == drop.referred_table
                   and (drop.name is None or c.name == drop.name)), None)
    for constraint in list(copy.constraints):
        if isinstance(constraint, ForeignKeyConstraint) and _targets(constraint) == chosen:
            copy.constraints.discard(constraint)
            for element in constraint.elements:
                element.parent.foreign_keys.discard(element)
            break
    return copy


def _targets(constraint: ForeignKeyConstraint) -> tuple[Any, ...]:
    """What tells a foreign key apart in a copy whose referred tables are not loaded: its name, its columns and
    the "table.column" each one refers to."""
    return (constraint.name, tuple(constraint.column_keys), tuple(e.target_fullname for e in constraint.elements))


def emit(ops: Operations, change: Change, current: Table) -> None:
    """Issue the Alembic operations of ``change`` on ``current`` (the table as reflected now)."""
    name, schema, dialect = current.name, current.schema, ops.get_context().dialect
    if copies_table(change, dialect.name):
        _emit_batch(ops, change, current)
        return
    if isinstance(change, AddColumn):
        spec = change.column
        default = None if spec.default is None else _server_default(spec.type, spec.default, spec.sizes)
        ops.add_column(name, Column(spec.name, column_types.sa_type(spec.type, spec.sizes), nullable=spec.nullable,
                                    server_default=default, quote=True), schema=schema)
    elif isinstance(change, RenameColumn):
        if dialect.name == "mysql":
            ops.execute(_RenameColumnInPlace(current, change.column, change.new_name))
        else:
            ops.alter_column(name, change.column, new_column_name=change.new_name, schema=schema,
                             **_existing(current.c[change.column], dialect))
    elif isinstance(change, DropColumn):
        ops.drop_column(name, change.column, schema=schema)
    elif isinstance(change, AlterColumn):
        ops.alter_column(name, change.column, schema=schema,
                         **_alter_arguments(change, current.c[change.column], dialect))
    elif isinstance(change, RenameTable):
        ops.rename_table(name, change.new_name, schema=schema)
    elif isinstance(change, AddIndex):
        ops.create_index(change.name, name, list(change.columns), unique=change.unique, schema=schema)
    elif isinstance(change, DropIndex):
        if change.unique_constraint:
            ops.drop_constraint(change.name, name, type_="unique", schema=schema)
        else:
            ops.drop_index(change.name, table_name=name, schema=schema)
    elif isinstance(change, AddForeignKey):
        ops.create_foreign_key(change.name, name, change.referred_table, [change.column], [change.referred_column],
                               source_schema=schema, referent_schema=change.referred_schema,
                               ondelete=change.on_delete or None, onupdate=change.on_update or None)
    elif isinstance(change, DropForeignKey):
        ops.drop_constraint(change.name, name, type_="foreignkey", schema=schema)


def _emit_batch(ops: Operations, change: Change | None, current: Table) -> None:
    """``change`` in SQLite's batch mode; None rebuilds the table as it is."""
    copy_from = _copy_without(current, change if isinstance(change, DropForeignKey) else None)
    with ops.batch_alter_table(current.name, schema=current.schema, copy_from=copy_from, recreate="always",
                               table_kwargs=_table_kwargs(current)) as batch:
        if isinstance(change, DropColumn):
            for index in _covering_indexes(current, change.column):
                batch.drop_index(index)
            batch.drop_column(change.column)
        elif isinstance(change, AlterColumn):
            batch.alter_column(change.column, **_alter_arguments(change, current.c[change.column],
                                                                 ops.get_context().dialect))
        elif isinstance(change, AddForeignKey):
            batch.create_foreign_key(change.name, change.referred_table, [change.column], [change.referred_column],
                                     ondelete=change.on_delete or None, onupdate=change.on_update or None)
        # DropForeignKey: the copy has no such key; rebuilding from it is the whole change.


def _table_kwargs(current: Table) -> dict[str, Any]:
    return {"sqlite_autoincrement": True} if current.info.get("sqlite_autoincrement") else {}


def dropped_indexes(change: Change, current: Table) -> list[str]:
    """Indexes that go with a dropped column (SQLite drops them in the rebuild; the other engines by themselves)."""
    return _covering_indexes(current, change.column) if isinstance(change, DropColumn) else []


class _Statements(io.StringIO):
    """Alembic's offline output, one write per statement (each ends with its terminator)."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[str] = []

    def write(self, text: str) -> int:
        statement = text.strip().removesuffix(";").strip()
        if statement:
            self.statements.append(statement)
        return len(text)


def _offline(dialect: Dialect) -> tuple[Operations, _Statements]:
    output = _Statements()
    context = MigrationContext.configure(dialect=dialect, opts={"as_sql": True, "output_buffer": output,
                                                               "literal_binds": True})
    return Operations(context), output


def render(change: Change, current: Table, dialect: Dialect) -> list[str]:
    """The statements ``change`` runs on ``current``, as Alembic writes them for ``dialect`` (nothing runs)."""
    ops, output = _offline(dialect)
    emit(ops, change, current)
    return output.statements


def rebuilt_definition(current: Table, dialect: Dialect) -> str:
    """The CREATE TABLE of a SQLite rebuild that changes nothing: what a rebuild keeps of ``current``."""
    ops, output = _offline(dialect)
    _emit_batch(ops, None, current)
    return output.statements[0]


def run(connection: Any, change: Change, current: Table) -> None:
    """Run ``change`` on ``connection`` (a SQLAlchemy Connection inside the caller's transaction)."""
    emit(Operations(MigrationContext.configure(connection=connection)), change, current)
