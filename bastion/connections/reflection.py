"""What a target database contains, read with sqlalchemy.inspect and kept in the shared cache.

Reflection is slow on big catalogues, so answers are cached in Django's cache
(shared by every process) as plain lists and dicts of strings. Keys carry the
connection's pk and updated_at plus a generation counter: an edit of the
connection, or ``invalidate()`` after a schema change, makes every old entry
unreachable at once; entries also expire, for changes made outside Bastion.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache
from sqlalchemy import inspect
from sqlalchemy.engine import Inspector

from bastion.connections.engines import get_engine
from bastion.connections.models import Connection

PREFIX = "bastion:reflect"
TTL = 300  # seconds
SYSTEM_SCHEMAS = {
    "postgresql": {"information_schema"},  # pg_* are left out by SQLAlchemy already
    "mysql": {"information_schema", "mysql", "performance_schema", "sys"},
    "sqlite": set(),
}
T = TypeVar("T")
_MISSING = object()


def _generation_key(connection: Connection) -> str:
    return f"{PREFIX}:gen:{connection.pk}"


def _generation(connection: Connection) -> int:
    key = _generation_key(connection)
    value = cache.get(key)
    if value is None:
        # A fresh, never-used value: if the counter was evicted, entries made under
        # the old one must not come back to life.
        cache.add(key, time.time_ns(), timeout=None)
        value = cache.get(key, 0)
    return int(value)


def invalidate(connection: Connection) -> None:
    """Forget everything cached about ``connection`` (after a schema change or an edit)."""
    key = _generation_key(connection)
    try:
        cache.incr(key)
    except ValueError:  # no counter yet: any new value leaves old entries behind
        cache.add(key, time.time_ns(), timeout=None)


def _key(connection: Connection, kind: str, *names: str | None) -> str:
    version = int(connection.updated_at.timestamp() * 1_000_000) if connection.updated_at else 0
    # Identifiers are arbitrary text; a digest keeps keys short and valid for every cache backend.
    digest = hashlib.sha256(json.dumps(names).encode()).hexdigest()[:32]
    return f"{PREFIX}:{connection.pk}:{version}:{_generation(connection)}:{kind}:{digest}"


def _cached(connection: Connection, kind: str, names: tuple[str | None, ...],
            compute: Callable[[Inspector], T]) -> T:
    key = _key(connection, kind, *names)
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        with get_engine(connection).connect() as conn:
            value = compute(inspect(conn))
        cache.set(key, value, TTL)
    return value


def schema_names(connection: Connection, *, include_system: bool = False) -> list[str]:
    """Schemas (MySQL: databases) the connection's user can see, system ones left out by default."""
    def compute(insp: Inspector) -> list[str]:
        hidden = set() if include_system else SYSTEM_SCHEMAS.get(insp.dialect.name, set())
        return sorted(str(name) for name in insp.get_schema_names() if name not in hidden)
    return _cached(connection, "schemas", ("system" if include_system else "",), compute)


def default_schema(connection: Connection) -> str | None:
    """The schema unqualified names refer to (``public``, the MySQL database, ``main``)."""
    return _cached(connection, "default_schema", (), lambda insp: insp.default_schema_name)


def table_names(connection: Connection, schema: str | None = None) -> list[str]:
    """Tables in ``schema`` (None: the default schema), sorted."""
    return _cached(connection, "tables", (schema,),
                   lambda insp: sorted(str(name) for name in insp.get_table_names(schema=schema)))


def view_names(connection: Connection, schema: str | None = None) -> list[str]:
    """Views in ``schema``, sorted."""
    return _cached(connection, "views", (schema,),
                   lambda insp: sorted(str(name) for name in insp.get_view_names(schema=schema)))


def _type_name(column_type: Any, dialect: Any) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:  # a type SQLAlchemy reflects but cannot render
        return type(column_type).__name__


def columns(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Columns of ``table`` in order: name, type, nullable, default, primary_key, autoincrement, comment."""
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        primary = set(insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
        return [
            {
                "name": str(col["name"]),
                "type": _type_name(col["type"], insp.dialect),
                "nullable": bool(col.get("nullable", True)),
                "default": None if col.get("default") is None else str(col["default"]),
                "primary_key": col["name"] in primary,
                "autoincrement": col.get("autoincrement") is True,
                "comment": None if col.get("comment") is None else str(col["comment"]),
            }
            for col in insp.get_columns(table, schema=schema)
        ]
    return _cached(connection, "columns", (schema, table), compute)


def foreign_keys(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Foreign keys of ``table``: name, constrained_columns, referred_schema, referred_table, referred_columns."""
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        return [
            {
                "name": None if fk.get("name") is None else str(fk["name"]),
                "constrained_columns": [str(c) for c in fk["constrained_columns"]],
                "referred_schema": None if fk.get("referred_schema") is None else str(fk["referred_schema"]),
                "referred_table": str(fk["referred_table"]),
                "referred_columns": [str(c) for c in fk["referred_columns"]],
            }
            for fk in insp.get_foreign_keys(table, schema=schema)
        ]
    return _cached(connection, "foreign_keys", (schema, table), compute)
