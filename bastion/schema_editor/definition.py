"""A new table as the user described it, the checks that need no database, and its SQLAlchemy Table.

``problems`` repeats every check the forms make, so the service can trust
nothing it is given; ``build_table`` turns a checked definition into a
``sqlalchemy.Table`` whose every name is quoted by the dialect (quote=True),
and ``create_table_sql`` is the exact statement that table compiles to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ForeignKeyConstraint, MetaData, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from bastion.schema_editor import column_types
from bastion.schema_editor.column_types import BY_KEY, Sizes
from bastion.schema_editor.identifiers import column_key, name_problem

MAX_COLUMNS = 200
MAX_FOREIGN_KEYS = 50
# ON DELETE / ON UPDATE: "" is the engines' default (NO ACTION), left out of the statement.
REFERENTIAL_ACTIONS = {"": "no action", "RESTRICT": "restrict", "CASCADE": "cascade", "SET NULL": "set null"}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str  # a key of column_types.BY_KEY
    sizes: Sizes = field(default_factory=Sizes)
    nullable: bool = False
    default: str | None = None  # the literal as typed; None: no default
    unique: bool = False
    primary_key: bool = False
    autoincrement: bool = False


@dataclass(frozen=True)
class ForeignKeySpec:
    column: str
    referred_table: str
    referred_column: str = ""  # "": the referred table's primary key (resolved by the service)
    on_delete: str = ""
    on_update: str = ""


@dataclass(frozen=True)
class TableSpec:
    schema: str | None
    name: str
    columns: tuple[ColumnSpec, ...]
    foreign_keys: tuple[ForeignKeySpec, ...] = ()

    def column(self, name: str, dialect: str) -> ColumnSpec | None:
        key = column_key(name, dialect)
        return next((c for c in self.columns if column_key(c.name, dialect) == key), None)

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns if c.primary_key]


def _quoted(name: str) -> str:
    return f"“{name}”"


def column_problems(column: ColumnSpec, dialect: str) -> list[str]:
    """What is wrong with one column on its own (the forms show these next to the column)."""
    found = []
    problem = name_problem(column.name, dialect, table=False)
    if problem:
        found.append(problem)
    column_type = BY_KEY.get(column.type)
    if column_type is None or dialect not in column_type.dialects:
        return [*found, "Choose one of the listed types."]
    problem = column_types.size_problem(column.type, column.sizes)
    if problem:
        found.append(problem)
    if column.default is not None:
        try:
            column_types.parse_default(column.type, column.default, column.sizes)
        except ValueError as exc:
            found.append(str(exc))
    if column.primary_key and column.nullable:
        found.append("A primary key column cannot allow NULL: untick NULL.")
    if column.autoincrement:
        if not column.primary_key:
            found.append("Only the primary key can autoincrement: tick primary key too.")
        if not column_type.integer:
            found.append("Only an integer or big integer column can autoincrement.")
        elif dialect == "sqlite" and column.type != "integer":
            found.append("On SQLite only an integer column can autoincrement (SQLite integers hold 64 bits "
                         "already): choose integer.")
        if column.default is not None:
            found.append("An autoincrement column takes no default.")
    return found


def problems(spec: TableSpec, dialect: str) -> list[str]:
    """Everything wrong with ``spec`` that can be told without the database, as sentences to show."""
    found = []
    problem = name_problem(spec.name, dialect, table=True)
    if problem:
        found.append(f"Table name: {problem}")
    if not spec.columns:
        found.append("A table needs at least one column.")
    if len(spec.columns) > MAX_COLUMNS:
        found.append(f"A table is created here with at most {MAX_COLUMNS} columns.")
    if len(spec.foreign_keys) > MAX_FOREIGN_KEYS:
        found.append(f"A table is created here with at most {MAX_FOREIGN_KEYS} foreign keys.")
    seen: dict[str, str] = {}
    for column in spec.columns:
        found += [f"Column {_quoted(column.name)}: {p}" for p in column_problems(column, dialect)]
        key = column_key(column.name, dialect)
        if key in seen:
            same = "" if seen[key] == column.name else f" (the engine does not tell it from {_quoted(seen[key])})"
            found.append(f"Column {_quoted(column.name)} is named twice{same}.")
        seen.setdefault(key, column.name)
    if any(c.autoincrement for c in spec.columns) and len(spec.primary_key) > 1:
        found.append("An autoincrement column must be the whole primary key, not part of a composite one.")
    for number, fk in enumerate(spec.foreign_keys, start=1):
        found += [f"Foreign key {number}: {p}" for p in foreign_key_problems(spec, fk, dialect)]
    return found


def foreign_key_problems(spec: TableSpec, fk: ForeignKeySpec, dialect: str) -> list[str]:
    """What is wrong with one foreign key that the new table alone can tell (the service checks its target)."""
    found = []
    column = spec.column(fk.column, dialect)
    if column is None:
        found.append(f"the new table has no column {_quoted(fk.column)}.")
    if not fk.referred_table:
        found.append("choose the table it refers to.")
    for action in (fk.on_delete, fk.on_update):
        if action not in REFERENTIAL_ACTIONS:
            found.append("choose one of the listed ON DELETE / ON UPDATE actions.")
    if column is not None and not column.nullable and "SET NULL" in (fk.on_delete, fk.on_update):
        found.append(f"SET NULL needs a column that allows NULL; {_quoted(column.name)} does not.")
    return found


def build_table(spec: TableSpec, dialect: str) -> Table:
    """The SQLAlchemy Table for a checked ``spec`` whose foreign keys name their referred column."""
    metadata = MetaData()
    columns = []
    for column in spec.columns:
        type_ = column_types.sa_type(column.type, column.sizes)
        default = None
        if column.default is not None:
            value = column_types.parse_default(column.type, column.default, column.sizes)
            default = column_types.server_default(column.type, value)
        columns.append(Column(
            column.name, type_, nullable=not column.primary_key and column.nullable,
            server_default=default, autoincrement=column.autoincrement, quote=True))
    by_name = {c.name: c for c in columns}
    constraints: list[Any] = []
    if spec.primary_key:
        constraints.append(PrimaryKeyConstraint(*spec.primary_key))
    constraints += [UniqueConstraint(c.name) for c in spec.columns if c.unique]
    table = Table(spec.name, metadata, *columns, *constraints, schema=spec.schema, quote=True, quote_schema=True,
                  sqlite_autoincrement=any(c.autoincrement for c in spec.columns))
    for fk in spec.foreign_keys:
        local = spec.column(fk.column, dialect)
        if local is None or not fk.referred_column:
            raise ValueError("build_table() needs a checked definition with resolved foreign keys")
        referred = _referred_table(metadata, spec.schema, fk.referred_table)
        if fk.referred_column not in referred.c:
            referred.append_column(Column(fk.referred_column, quote=True))
        table.append_constraint(ForeignKeyConstraint(
            [by_name[local.name]], [referred.c[fk.referred_column]],
            ondelete=fk.on_delete or None, onupdate=fk.on_update or None))
    return table


def _referred_table(metadata: MetaData, schema: str | None, name: str) -> Table:
    """A stand-in for an existing table a foreign key refers to: only its name and schema reach the DDL."""
    key = f"{schema}.{name}" if schema else name
    if key in metadata.tables:
        return metadata.tables[key]
    return Table(name, metadata, schema=schema, quote=True, quote_schema=True)


def create_table_sql(table: Table, dialect: Dialect) -> str:
    """The CREATE TABLE statement ``table`` compiles to on ``dialect``, as the database receives it.

    Drivers with format/pyformat parameters (psycopg, PyMySQL) get every % doubled
    and undo that themselves; the text shown is what reaches the server.
    """
    text = str(CreateTable(table).compile(dialect=dialect)).strip()
    if dialect.paramstyle in ("format", "pyformat"):
        text = text.replace("%%", "%")
    return text


def describe(spec: TableSpec, table: Table, dialect: Dialect) -> dict[str, Any]:
    """The new table's definition for the audit log: columns as the engine writes them, and its keys."""
    columns = []
    for column in spec.columns:
        sa_column = table.c[column.name]
        columns.append({
            "name": column.name,
            "type": str(sa_column.type.compile(dialect=dialect)),
            "nullable": bool(sa_column.nullable),
            "default": column.default,
            "primary_key": column.primary_key,
            "autoincrement": column.autoincrement,
            "unique": column.unique,
        })
    return {
        "schema": spec.schema,
        "table": spec.name,
        "columns": columns,
        "primary_key": spec.primary_key,
        "unique": [[c.name] for c in spec.columns if c.unique],
        "foreign_keys": [
            {"columns": [fk.column], "referred_schema": spec.schema, "referred_table": fk.referred_table,
             "referred_columns": [fk.referred_column], "on_delete": fk.on_delete or "NO ACTION",
             "on_update": fk.on_update or "NO ACTION"}
            for fk in spec.foreign_keys
        ],
    }
