"""A table as the explorer sees it: reflected columns, row identity, and SQLAlchemy constructs.

Names from a request are never used as SQL until they have been found in the
reflected catalogue (T02); the SQLAlchemy constructs built here are quoted by
the dialect. Columns are built without SQL types on purpose: values come back
exactly as the driver gives them (an SQLite DATE column holding 'soon' must not
crash a page), and values sent are bound without casts (see values.bound).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnClause, TableClause, column, table

from bastion.connections import reflection
from bastion.connections.models import Connection


class TableNotFound(LookupError):
    """No such table or view (or the name was not spelled as the catalogue spells it)."""


class KeyKind(StrEnum):
    PRIMARY = "primary"  # the primary key
    ROWID = "rowid"  # SQLite's implicit rowid
    CTID = "ctid"  # PostgreSQL's physical row address: stable until the row is updated
    UNIQUE = "unique"  # a unique key over NOT NULL columns
    NONE = "none"  # nothing identifies a row: OFFSET paging, read-only


# SQLite's rowid is reachable by any of these names unless a real column takes it.
_ROWID_NAMES = ("rowid", "_rowid_", "oid")
# Kinds whose values can be ordered by every engine.
_UNSORTABLE_KINDS = frozenset({"json"})


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str
    kind: str
    nullable: bool
    default: str | None
    primary_key: bool
    autoincrement: bool
    comment: str | None = None
    timezone: bool = False
    length: int | None = None
    choices: tuple[str, ...] | None = None

    @property
    def sortable(self) -> bool:
        return self.kind not in _UNSORTABLE_KINDS

    @property
    def is_texty(self) -> bool:
        """Searchable with LIKE as it is (no cast)."""
        return self.kind in ("text", "other")

    @classmethod
    def from_reflection(cls, data: dict[str, Any]) -> ColumnInfo:
        choices = data.get("choices")
        return cls(
            name=data["name"], type=data["type"], kind=data.get("kind") or "other",
            nullable=data["nullable"], default=data["default"], primary_key=data["primary_key"],
            autoincrement=data["autoincrement"], comment=data.get("comment"),
            timezone=bool(data.get("timezone")), length=data.get("length"),
            choices=tuple(choices) if choices else None,
        )


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    referred_schema: str | None
    referred_table: str
    referred_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableInfo:
    connection: Connection
    schema: str | None
    name: str
    is_view: bool
    dialect: str
    columns: tuple[ColumnInfo, ...]
    key_kind: KeyKind
    key: tuple[str, ...]  # names of the identity columns (pseudo-columns included)
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexed: frozenset[str] = field(default_factory=frozenset)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def editable(self) -> bool:
        """Rows can be told apart, so they can be changed one at a time."""
        return not self.is_view and self.key_kind != KeyKind.NONE

    @property
    def key_is_pseudo(self) -> bool:
        return self.key_kind in (KeyKind.ROWID, KeyKind.CTID)

    def sa_table(self) -> TableClause:
        return table(self.name, *(column(c.name) for c in self.columns), schema=self.schema)

    def sa_column(self, sa_table: TableClause, name: str) -> ColumnClause[Any]:
        if self.key_is_pseudo and name == self.key[0]:
            return column(name)  # "rowid" / "ctid": not in the table's column list, still names the pseudo-column
        return sa_table.c[name]

    def key_columns(self, sa_table: TableClause) -> list[ColumnClause[Any]]:
        return [self.sa_column(sa_table, name) for name in self.key]

    def identifies(self, columns: Sequence[str]) -> bool:
        """Do ``columns`` name at most one row: the row identity, the primary key or a unique key?"""
        wanted = list(columns)
        if wanted == list(self.key):
            return True
        if self.key_kind in (KeyKind.PRIMARY, KeyKind.UNIQUE) and sorted(wanted) == sorted(self.key):
            return True
        return any(sorted(wanted) == sorted(key)
                   for key in reflection.unique_keys(self.connection, self.schema, self.name))

    def fk_for(self, column_name: str) -> ForeignKey | None:
        """The single-column foreign key starting at ``column_name`` (links in cells)."""
        return next((fk for fk in self.foreign_keys if fk.columns == (column_name,)), None)


def _row_identity(connection: Connection, dialect: str, schema: str | None, name: str, is_view: bool,
                  columns: tuple[ColumnInfo, ...]) -> tuple[KeyKind, tuple[str, ...]]:
    if is_view:
        return KeyKind.NONE, ()
    primary = tuple(c.name for c in columns if c.primary_key)
    if primary:
        return KeyKind.PRIMARY, primary
    if dialect == "sqlite":
        taken = {c.name.casefold() for c in columns}
        free = next((n for n in _ROWID_NAMES if n not in taken), None)
        if free is not None:
            return KeyKind.ROWID, (free,)
    if dialect == "postgresql":
        return KeyKind.CTID, ("ctid",)
    unique = reflection.unique_keys(connection, schema, name)
    if unique:
        return KeyKind.UNIQUE, tuple(unique[0])
    return KeyKind.NONE, ()


def _sqlite_rowid_alias(columns: tuple[ColumnInfo, ...]) -> tuple[ColumnInfo, ...]:
    """SQLite numbers an INTEGER PRIMARY KEY itself (it is the rowid) and never stores NULL in it,
    whatever reflection says."""
    primary = [c for c in columns if c.primary_key]
    if len(primary) != 1 or primary[0].type.upper() != "INTEGER":
        return columns
    alias = replace(primary[0], autoincrement=True, nullable=False)
    return tuple(alias if c is primary[0] else c for c in columns)


def dialect_name(connection: Connection) -> str:
    return {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}[connection.engine]


def resolve_table(connection: Connection, schema: str | None, name: str) -> TableInfo:
    """The table or view ``schema.name`` as reflected; TableNotFound unless spelled exactly as in the catalogue."""
    schema = schema or None
    if not name or (schema is not None and schema not in reflection.schema_names(connection)):
        raise TableNotFound(name)
    if name in reflection.table_names(connection, schema):
        is_view = False
    elif name in reflection.view_names(connection, schema):
        is_view = True
    else:
        raise TableNotFound(name)
    dialect = dialect_name(connection)
    columns = tuple(ColumnInfo.from_reflection(c) for c in reflection.columns(connection, schema, name))
    if dialect == "sqlite" and not is_view:
        columns = _sqlite_rowid_alias(columns)
    key_kind, key = _row_identity(connection, dialect, schema, name, is_view, columns)
    foreign_keys = () if is_view else tuple(
        ForeignKey(fk["name"], tuple(fk["constrained_columns"]), fk["referred_schema"], fk["referred_table"],
                   tuple(fk["referred_columns"]))
        for fk in reflection.foreign_keys(connection, schema, name))
    indexed = frozenset() if is_view else frozenset(reflection.indexed_leading_columns(connection, schema, name))
    return TableInfo(connection=connection, schema=schema, name=name, is_view=is_view, dialect=dialect,
                     columns=columns, key_kind=key_kind, key=key, foreign_keys=foreign_keys, indexed=indexed)
