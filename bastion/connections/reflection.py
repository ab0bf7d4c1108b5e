"""What a target database contains, read with sqlalchemy.inspect and kept in the shared cache.

Reflection is slow on big catalogues, so answers are cached in Django's cache
(shared by every process) as plain lists and dicts of strings. Keys carry the
connection's pk and updated_at plus a generation counter: an edit of the
connection, or ``invalidate()`` after a schema change, makes every old entry
unreachable at once; entries also expire, for changes made outside Bastion.

Each process also keeps what it read for a moment (LOCAL_TTL), so a busy page
does not pay a shared-cache round trip per catalogue question. The generation
counters are read again from the shared cache at the start of every request, so
an invalidation made in any process applies from the next request on (a user who
has just created a table opens it at once, whichever process serves them); outside
requests, one made in another process applies within LOCAL_TTL.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.signals import request_started
from django.dispatch import receiver
from sqlalchemy import column as sql_column
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, inspect, select, text, true
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.mysql import SET as MYSQL_SET
from sqlalchemy.engine import Inspector
from sqlalchemy.sql import sqltypes

from bastion.connections.engines import get_engine
from bastion.connections.models import Connection

PREFIX = "bastion:reflect"
TTL = 300  # seconds
SYSTEM_SCHEMAS = {
    "postgresql": {"information_schema"},  # pg_* are left out by SQLAlchemy already
    "mysql": {"information_schema", "mysql", "performance_schema", "sys"},
    "sqlite": set(),
}
LOCAL_TTL = 2.0  # seconds a process trusts what it read from the shared cache
LOCAL_MAX_ENTRIES = 4096
T = TypeVar("T")
_MISSING = object()
_local: dict[str, tuple[float, Any]] = {}  # key -> (monotonic expiry, value); values are never mutated


def _local_get(key: str) -> Any:
    found = _local.get(key)
    if found is None or found[0] < time.monotonic():
        return _MISSING
    return found[1]


def _local_set(key: str, value: Any) -> None:
    if len(_local) >= LOCAL_MAX_ENTRIES:
        _local.clear()
    _local[key] = (time.monotonic() + LOCAL_TTL, value)


def _generation_key(connection: Connection) -> str:
    return f"{PREFIX}:gen:{connection.pk}"


_generations: dict[str, tuple[float, Any]] = {}  # generation counters read by this process: key -> (expiry, value)


@receiver(request_started)
def _forget_generations(**_: Any) -> None:
    _generations.clear()


def _generation(connection: Connection) -> int:
    key = _generation_key(connection)
    found = _generations.get(key)
    if found is not None and found[0] >= time.monotonic():
        return int(found[1])
    value = cache.get(key)
    if value is None:
        # A fresh, never-used value: if the counter was evicted, entries made under
        # the old one must not come back to life.
        cache.add(key, time.time_ns(), timeout=None)
        value = cache.get(key, 0)
    _generations[key] = (time.monotonic() + LOCAL_TTL, value)
    return int(value)


def invalidate(connection: Connection) -> None:
    """Forget everything cached about ``connection`` (after a schema change or an edit)."""
    key = _generation_key(connection)
    _generations.pop(key, None)
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
            compute: Callable[[Inspector], T], ttl: int = TTL) -> T:
    """``compute(inspector)`` once per key and generation; ``inspector.bind`` is the open connection.

    Also used by counts.py, so that ``invalidate()`` forgets row counts too.
    """
    key = _key(connection, kind, *names)
    value = _local_get(key)
    if value is not _MISSING:
        return value
    value = cache.get(key, _MISSING)
    if value is _MISSING:
        with get_engine(connection).connect() as conn:
            value = compute(inspect(conn))
        cache.set(key, value, ttl)
    _local_set(key, value)
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


def view_definition(connection: Connection, schema: str | None, view: str) -> str | None:
    """The text that defines ``view`` as the engine keeps it (SQLite and MySQL: the whole CREATE VIEW;
    PostgreSQL: the SELECT), or None when the engine does not say."""
    def compute(insp: Inspector) -> str | None:
        try:
            found = insp.get_view_definition(view, schema=schema)
        except (NotImplementedError, sa_exc.NoSuchTableError):
            return None
        return None if found is None else str(found)
    return _cached(connection, "view_definition", (schema, view), compute)


# --- names -----------------------------------------------------------------------------------
def _name(insp: Inspector, value: Any) -> str:
    """A reflected identifier as the database spells it.

    SQLAlchemy's MySQL reflection parses SHOW CREATE TABLE and leaves backticks in
    column, key and constraint names doubled (a`b comes back as a``b); undo that.
    """
    text_value = str(value)
    return text_value.replace("``", "`") if insp.dialect.name == "mysql" else text_value


def _schema_name(insp: Inspector, schema: str | None) -> str:
    """The actual name of ``schema`` (None: the default schema)."""
    return str(schema if schema is not None else insp.default_schema_name)


# --- columns ---------------------------------------------------------------------------------
def _type_name(column_type: Any, dialect: Any) -> str:
    try:
        return str(column_type.compile(dialect=dialect))
    except Exception:  # a type SQLAlchemy reflects but cannot render
        return type(column_type).__name__


# Checked in order: Float is a Numeric, Enum a String, TIMESTAMP a DateTime.
_KINDS = (
    (sqltypes.NullType, "other"),  # SQLite column without a declared type
    (sqltypes.Boolean, "boolean"),
    (sqltypes.Integer, "integer"),
    (sqltypes.Float, "float"),
    (sqltypes.Numeric, "decimal"),
    (sqltypes.DateTime, "datetime"),
    (sqltypes.Date, "date"),
    (sqltypes.Time, "time"),
    (sqltypes.JSON, "json"),
    (sqltypes.Uuid, "uuid"),
    (sqltypes.String, "text"),  # also Enum, MySQL ENUM and SET
    (sqltypes._Binary, "binary"),  # LargeBinary, BLOB, BYTEA, VARBINARY
)


def column_kind(column_type: Any) -> str:
    """What a reflected SQLAlchemy type holds, as one word forms and filters can switch on.

    One of integer, decimal, float, boolean, date, time, datetime, text, json, binary, uuid, other.
    """
    return next((kind for sa_type, kind in _KINDS if isinstance(column_type, sa_type)),
                "other")  # Interval, arrays, network types, MONEY, BIT, YEAR...


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _type_facts(column_type: Any) -> dict[str, Any]:
    kind = column_kind(column_type)
    enumerated = isinstance(column_type, sqltypes.Enum | MYSQL_SET)
    return {
        "kind": kind,
        "timezone": kind in ("datetime", "time") and bool(getattr(column_type, "timezone", False)),
        "length": (_int_or_none(getattr(column_type, "length", None))
                   if kind in ("text", "binary") and not enumerated else None),
        "precision": _int_or_none(getattr(column_type, "precision", None)) if kind == "decimal" else None,
        "scale": _int_or_none(getattr(column_type, "scale", None)) if kind == "decimal" else None,
        "choices": ([str(v) for v in column_type.enums] if isinstance(column_type, sqltypes.Enum) else None),
    }


def columns(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Columns of ``table`` in order.

    Keys: name, type (as the dialect writes it), nullable, default, primary_key,
    autoincrement, comment; and, for typed forms and filters: kind (see
    ``column_kind``), timezone, length, precision, scale, and choices (the allowed
    values of an enum type or of a ``col IN ('a', 'b')`` check constraint, else None).
    """
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        primary = {_name(insp, c) for c in insp.get_pk_constraint(table, schema=schema).get("constrained_columns")
                   or []}
        checks = _check_clauses(insp, schema, table)
        result = []
        for col in insp.get_columns(table, schema=schema):
            name = _name(insp, col["name"])
            facts = _type_facts(col["type"])
            if facts["choices"] is None:
                facts["choices"] = _choices_from_checks(insp.dialect.name, name, checks)
            if facts["kind"] == "text" and _json_checked(name, checks):  # MariaDB's JSON is LONGTEXT + CHECK
                facts["kind"] = "json"
            result.append({
                "name": name,
                "type": _type_name(col["type"], insp.dialect),
                "nullable": bool(col.get("nullable", True)),
                "default": None if col.get("default") is None else str(col["default"]),
                "primary_key": name in primary,
                "autoincrement": col.get("autoincrement") is True,
                "comment": None if col.get("comment") is None else str(col["comment"]),
                **facts,
            })
        return result
    return _cached(connection, "columns", (schema, table), compute)


# --- check constraints -----------------------------------------------------------------------
# MariaDB keeps column-level CHECKs (and JSON's json_valid) out of what SQLAlchemy parses
# from SHOW CREATE TABLE; information_schema has them all. MariaDB names checks per table,
# MySQL per schema (and lists no TABLE_NAME in CHECK_CONSTRAINTS).
_MARIADB_CHECKS = text(
    "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME = :table")
_MYSQL_CHECKS = text(
    "SELECT tc.TABLE_NAME, cc.CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS cc "
    "JOIN information_schema.TABLE_CONSTRAINTS tc ON tc.CONSTRAINT_SCHEMA = cc.CONSTRAINT_SCHEMA "
    "AND tc.CONSTRAINT_NAME = cc.CONSTRAINT_NAME "
    "WHERE tc.TABLE_SCHEMA = :schema AND tc.TABLE_NAME = :table AND tc.CONSTRAINT_TYPE = :check")


def _check_clauses(insp: Inspector, schema: str | None, table: str) -> list[str]:
    """The SQL text of each check constraint on ``table`` (without the CHECK keyword)."""
    if insp.dialect.name == "mysql":
        mariadb = bool(getattr(insp.dialect, "is_mariadb", False))
        params = {"schema": _schema_name(insp, schema), "table": table}
        try:
            rows = insp.bind.execute(_MARIADB_CHECKS if mariadb else _MYSQL_CHECKS,
                                     params if mariadb else {**params, "check": "CHECK"}).all()
        except sa_exc.DBAPIError:  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS (and no checks)
            return []
        # information_schema compares names without case; the table's own name is exact.
        return [str(clause) for name, clause in rows if name == table]
    try:
        return [str(check["sqltext"]) for check in insp.get_check_constraints(table, schema=schema)]
    except NotImplementedError:
        return []


_IDENT = r'"(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\]|[^\W\d][\w$]*'
_TYPE = r'(?:"(?:[^"]|"")+"|\w+)(?:\.(?:"(?:[^"]|"")+"|\w+))?(?:\s+varying)?'
_STRINGS = {
    # MySQL writes 'b\'c' (MariaDB) or _utf8mb4'a' (MySQL 8); elsewhere only '' escapes a quote.
    "mysql": r"(?:_\w+\s*)?'(?:[^'\\]|''|\\.)*'",
    "other": r"'(?:[^']|'')*'",
}
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}


def _choice_patterns(flavour: str) -> list[re.Pattern[str]]:
    literal = rf"(?:{_STRINGS[flavour]})(?:\s*::\s*{_TYPE})?"
    literals = rf"{literal}(?:\s*,\s*{literal})*"
    column = rf"(?P<open>\()?\s*(?P<col>{_IDENT})\s*(?(open)\))(?:\s*::\s*{_TYPE})?"
    return [re.compile(pattern, re.IGNORECASE | re.DOTALL) for pattern in (
        rf"{column}\s+IN\s*\(\s*(?P<values>{literals})\s*\)",  # col IN ('a', 'b')
        # PostgreSQL's own spelling: (col)::text = ANY ((ARRAY['a'::character varying, ...])::text[])
        rf"{column}\s*=\s*ANY\s*\(\s*(?P<aopen>\()?\s*ARRAY\s*\[\s*(?P<values>{literals})\s*\]\s*(?(aopen)\))"
        rf"(?:\s*::\s*{_TYPE}\s*\[\])?\s*\)",
        rf"{column}\s*=\s*(?P<values>{literal})",  # a one-value IN, as PostgreSQL and MariaDB rewrite it
    )]


_CHOICE_PATTERNS = {flavour: _choice_patterns(flavour) for flavour in _STRINGS}
_JSON_VALID = re.compile(rf"json_valid\s*\(\s*(?P<col>{_IDENT})\s*\)", re.IGNORECASE)


def _strip_parentheses(clause: str) -> str:
    """``clause`` without parentheses that enclose all of it: ((a IN ('x'))) -> a IN ('x')."""
    clause = clause.strip()
    while clause.startswith("(") and clause.endswith(")"):
        depth, quote = 0, ""
        for position, char in enumerate(clause):
            if quote:
                quote = "" if char == quote else quote  # a doubled quote closes and reopens: same effect
            elif char in "'\"`":
                quote = char
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0 and position != len(clause) - 1:
                    return clause  # (a) OR (b): the first parenthesis closes early
        clause = clause[1:-1].strip()
    return clause


def _unquote_identifier(token: str) -> tuple[str, bool]:
    """(name, was_quoted) for an identifier as a check clause writes it."""
    if token[0] == '"':
        return token[1:-1].replace('""', '"'), True
    if token[0] == "`":
        return token[1:-1].replace("``", "`"), True
    if token[0] == "[":
        return token[1:-1], True
    return token, False


def _names_column(dialect_name: str, token: str, column: str) -> bool:
    name, quoted = _unquote_identifier(token)
    if name == column:
        return True
    # PostgreSQL folds only unquoted names (and writes them folded); MySQL and SQLite ignore case.
    return (dialect_name != "postgresql" or not quoted) and name.casefold() == column.casefold()


def _unquote_string(token: str, flavour: str) -> str:
    body = token[token.index("'") + 1: token.rindex("'")]
    if flavour != "mysql":
        return body.replace("''", "'")
    return re.sub(r"''|\\(.)", lambda m: "'" if m.group(0) == "''" else _MYSQL_ESCAPES.get(m.group(1), m.group(1)),
                  body, flags=re.DOTALL)


def _choices_from_checks(dialect_name: str, column: str, clauses: list[str]) -> list[str] | None:
    """The values allowed by checks of the form ``column IN ('a', 'b')``; None when there is none.

    Deliberately narrow: any other shape (AND, OR, numbers, functions) is not a list of choices.
    """
    flavour = "mysql" if dialect_name == "mysql" else "other"
    string = re.compile(_STRINGS[flavour], re.DOTALL)
    allowed: list[str] | None = None
    for clause in clauses:
        stripped = _strip_parentheses(clause)
        for pattern in _CHOICE_PATTERNS[flavour]:
            match = pattern.fullmatch(stripped)
            if match and _names_column(dialect_name, match.group("col"), column):
                values = list(dict.fromkeys(_unquote_string(token, flavour)
                                            for token in string.findall(match.group("values"))))
                allowed = values if allowed is None else [v for v in allowed if v in values]
                break
    return allowed


def _json_checked(column: str, clauses: list[str]) -> bool:
    for clause in clauses:
        match = _JSON_VALID.fullmatch(_strip_parentheses(clause))
        if match and _names_column("mysql", match.group("col"), column):
            return True
    return False


# --- keys and indexes ------------------------------------------------------------------------
def _partial(index: dict[str, Any]) -> bool:
    options = index.get("dialect_options") or {}
    return any(key.endswith("_where") and value is not None for key, value in options.items())


def _sqlite_index_records(insp: Inspector, schema: str | None, table: str) -> list[dict[str, Any]]:
    # Straight from SQLite's index list: SQLAlchemy finds UNIQUE constraints by parsing the
    # CREATE TABLE text, which misses quoted names such as "x""y", and skips expression indexes.
    listed = func.pragma_index_list(table, _schema_name(insp, schema)).table_valued(
        "seq", "name", "unique", "origin", "partial")
    info = func.pragma_index_info(listed.c.name, _schema_name(insp, schema)).table_valued("seqno", "cid", "name")
    rows = insp.bind.execute(
        select(listed.c.name, listed.c.unique, listed.c.origin, listed.c.partial, info.c.name)
        .select_from(listed.join(info, true())).order_by(listed.c.name, info.c.seqno)).all()
    records: dict[str, dict[str, Any]] = {}
    for name, unique, origin, partial, column in rows:
        record = records.setdefault(str(name), {
            "name": str(name), "columns": [], "unique": bool(unique), "partial": bool(partial), "sortable": True,
            "origin": {"c": "index", "u": "unique", "pk": "primary"}.get(str(origin), "index")})
        record["columns"].append(None if column is None else str(column))  # None: an expression
    return list(records.values())


def _index_records(insp: Inspector, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Indexes and unique constraints alike: name, columns (None for an expression), unique,
    partial, sortable (a b-tree: gives rows in order) and origin (index, unique or primary)."""
    if insp.dialect.name == "sqlite":
        return _sqlite_index_records(insp, schema, table)
    records = []
    for index in insp.get_indexes(table, schema=schema):
        options = index.get("dialect_options") or {}
        records.append({
            "name": _name(insp, index["name"]),
            "columns": [None if c is None else _name(insp, c) for c in index["column_names"]],
            "unique": bool(index.get("unique")),
            "partial": _partial(index),
            # GIN, GiST, hash, full-text and spatial indexes do not give rows in order.
            "sortable": options.get("postgresql_using", "btree") == "btree"
            and options.get("mysql_prefix") not in ("FULLTEXT", "SPATIAL"),
            "origin": "index",
        })
    for unique in insp.get_unique_constraints(table, schema=schema):
        records.append({
            "name": None if unique.get("name") is None else _name(insp, unique["name"]),
            "columns": [_name(insp, c) for c in unique["column_names"]],
            "unique": True, "partial": False, "sortable": True, "origin": "unique",
        })
    return records


def _primary_key(insp: Inspector, schema: str | None, table: str) -> list[str]:
    return [_name(insp, c) for c in insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or []]


def unique_keys(connection: Connection, schema: str | None, table: str) -> list[list[str]]:
    """Column lists that identify a row besides the primary key, shortest first.

    Unique constraints and unique indexes whose columns are all NOT NULL (a NULL
    may repeat, so it identifies nothing); partial and expression indexes are left
    out. For tables without a primary key this is how a row is found again.
    """
    def compute(insp: Inspector) -> list[list[str]]:
        not_null = {_name(insp, col["name"]) for col in insp.get_columns(table, schema=schema)
                    if not col.get("nullable", True)}
        primary = frozenset(_primary_key(insp, schema, table))
        keys: dict[frozenset[str], list[str]] = {}
        for record in _index_records(insp, schema, table):
            key = record["columns"]
            if (not record["unique"] or record["partial"] or record["origin"] == "primary" or not key
                    or None in key):
                continue
            if set(key) <= not_null and frozenset(key) != primary:
                keys.setdefault(frozenset(key), key)
        return sorted(keys.values(), key=lambda key: (len(key), key))
    return _cached(connection, "unique_keys", (schema, table), compute)


def indexes(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Indexes of ``table`` by name: name, columns (expressions left out), unique.

    Listed: what CREATE INDEX made, and on PostgreSQL and MySQL the indexes of UNIQUE
    constraints too (SQLite's automatic ones are not); the primary key's index is not.
    """
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        found = [
            {"name": record["name"], "columns": [c for c in record["columns"] if c is not None],
             "unique": record["unique"]}
            for record in _index_records(insp, schema, table) if record["origin"] == "index"
        ]
        return sorted(found, key=lambda index: index["name"])
    return _cached(connection, "indexes", (schema, table), compute)


def indexed_leading_columns(connection: Connection, schema: str | None, table: str) -> set[str]:
    """Columns a sort can use an index for: the first column of the primary key or of an ordered index.

    Partial, expression-led, hash, GIN/GiST and full-text indexes do not count. The
    explorer warns when sorting by any other column: that reads the whole table.
    """
    def compute(insp: Inspector) -> list[str]:
        firsts = [_primary_key(insp, schema, table)]
        firsts += [record["columns"] for record in _index_records(insp, schema, table)
                   if record["sortable"] and not record["partial"]]
        return sorted({names[0] for names in firsts if names and names[0] is not None})
    return set(_cached(connection, "leading_columns", (schema, table), compute))


# --- foreign keys ----------------------------------------------------------------------------
_MYSQL_FOREIGN_KEYS = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
    "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE ")
_MYSQL_FOREIGN_KEYS_OF = text(
    _MYSQL_FOREIGN_KEYS + "TABLE_SCHEMA = :schema AND TABLE_NAME = :table AND REFERENCED_TABLE_NAME IS NOT NULL "
    "ORDER BY CONSTRAINT_NAME, ORDINAL_POSITION")
_MYSQL_FOREIGN_KEYS_TO = text(
    _MYSQL_FOREIGN_KEYS + "REFERENCED_TABLE_SCHEMA = :schema AND REFERENCED_TABLE_NAME = :table "
    "ORDER BY TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION")
# One query, exact: the referring side's schema comes from the catalogue, not from
# SQLAlchemy's reading of pg_get_constraintdef(), which depends on the search_path.
_POSTGRESQL_FOREIGN_KEYS_TO = text(
    "SELECT n.nspname, t.relname, c.conname, a.attname, rn.nspname, r.relname, ra.attname "
    "FROM pg_catalog.pg_constraint c "
    "JOIN pg_catalog.pg_class t ON t.oid = c.conrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace "
    "JOIN pg_catalog.pg_class r ON r.oid = c.confrelid "
    "JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace "
    "CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(attnum, refattnum, position) "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
    "JOIN pg_catalog.pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = k.refattnum "
    # conparentid: the copies a partitioned table's key makes on each partition are left out.
    "WHERE c.contype = :foreign AND c.conparentid = 0 AND rn.nspname = :schema AND r.relname = :table "
    "ORDER BY n.nspname, t.relname, c.conname, k.position")


def _grouped_foreign_keys(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows of (schema, table, name, column, referred schema, referred table, referred column) as keys."""
    keys: dict[tuple[str, str, str], dict[str, Any]] = {}
    for schema, table, name, column, referred_schema, referred_table, referred_column in rows:
        key = keys.setdefault((str(schema), str(table), str(name)), {
            "schema": str(schema), "table": str(table), "name": str(name), "constrained_columns": [],
            "referred_schema": str(referred_schema), "referred_table": str(referred_table),
            "referred_columns": []})
        key["constrained_columns"].append(str(column))
        key["referred_columns"].append(str(referred_column))
    return list(keys.values())


def foreign_keys(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Foreign keys of ``table``: name, constrained_columns, referred_schema, referred_table, referred_columns.

    referred_schema is None for a table in the same schema when ``schema`` is None.
    SQLite keys have no name (None). MySQL and SQLite keys are read from the catalogue,
    not from SQLAlchemy's parsing of the table's SQL (which loses oddly quoted names).
    """
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        if insp.dialect.name == "mysql":
            # SQLAlchemy's SHOW CREATE TABLE parser drops keys whose names hold a backtick.
            own = _schema_name(insp, schema)
            rows = insp.bind.execute(_MYSQL_FOREIGN_KEYS_OF, {"schema": own, "table": table}).all()
            return [
                {
                    "name": fk["name"],
                    "constrained_columns": fk["constrained_columns"],
                    "referred_schema": schema if fk["referred_schema"] == own else fk["referred_schema"],
                    "referred_table": fk["referred_table"],
                    "referred_columns": fk["referred_columns"],
                }
                for fk in _grouped_foreign_keys([row for row in rows if row[1] == table])
            ]
        if insp.dialect.name == "sqlite":
            return [
                {key: fk[key] for key in ("name", "constrained_columns", "referred_table", "referred_columns")}
                | {"referred_schema": schema}
                for fk in _sqlite_foreign_keys(insp, _schema_name(insp, schema), table)
            ]
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


def referencing_foreign_keys(connection: Connection, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Foreign keys anywhere in the database that refer to ``table`` (self-references included).

    Keys: schema (None for the default schema, as elsewhere in this module), table,
    name, constrained_columns, referred_columns; ordered by schema, table and name.
    One catalogue query per table on the servers (exact, whatever the search_path);
    SQLite reads all keys of its schema once.
    """
    def compute(insp: Inspector) -> list[dict[str, Any]]:
        default = str(insp.default_schema_name)
        target = _schema_name(insp, schema)
        dialect = insp.dialect.name
        if dialect == "sqlite":
            found = [fk for fk in _sqlite_schema_foreign_keys(connection, target)
                     if fk["referred_table"].casefold() == table.casefold()]  # SQLite matches names without case
        else:
            query = _POSTGRESQL_FOREIGN_KEYS_TO if dialect == "postgresql" else _MYSQL_FOREIGN_KEYS_TO
            rows = insp.bind.execute(query, {"schema": target, "table": table, "foreign": "f"}).all()
            found = [fk for fk in _grouped_foreign_keys(rows)
                     if fk["referred_schema"] == target and fk["referred_table"] == table]
        return [
            {
                "schema": None if fk["schema"] == default else fk["schema"],
                "table": fk["table"],
                "name": fk["name"],
                "constrained_columns": fk["constrained_columns"],
                "referred_columns": fk["referred_columns"],
            }
            for fk in found
        ]
    return _cached(connection, "referencing_foreign_keys", (schema, table), compute)


def _sqlite_foreign_keys(insp: Inspector, schema: str, table: str | None = None) -> list[dict[str, Any]]:
    """Foreign keys of one SQLite table (or of every table of ``schema``), from PRAGMA foreign_key_list.

    One query; SQLAlchemy instead parses each CREATE TABLE text for constraint names and
    warns on quoted names it cannot follow. SQLite keys have no name here (None), and
    cannot leave their database: the referred table is in ``schema``.
    """
    master = sql_table("sqlite_master", sql_column("name"), sql_column("type"), schema=schema)
    listed = func.pragma_foreign_key_list(master.c.name, schema).table_valued("id", "seq", "table", "from", "to")
    query = (select(master.c.name, listed.c.id, listed.c.table, listed.c["from"], listed.c.to)
             .select_from(master.join(listed, true())).where(master.c.type == "table")
             .order_by(master.c.name, listed.c.id, listed.c.seq))
    if table is not None:
        query = query.where(master.c.name == table)
    keys: dict[tuple[str, int], dict[str, Any]] = {}
    for own, number, referred, column, referred_column in insp.bind.execute(query):
        key = keys.setdefault((str(own), int(number)), {
            "schema": schema, "table": str(own), "name": None, "constrained_columns": [],
            "referred_table": str(referred), "referred_columns": []})
        key["constrained_columns"].append(str(column))
        key["referred_columns"].append(None if referred_column is None else str(referred_column))
    for key in keys.values():
        if None in key["referred_columns"]:  # REFERENCES t without columns: t's primary key
            try:
                key["referred_columns"] = _primary_key(insp, schema, key["referred_table"])
            except sa_exc.NoSuchTableError:  # SQLite lets a key name a table that does not exist
                key["referred_columns"] = []
    return list(keys.values())


def _sqlite_schema_foreign_keys(connection: Connection, schema: str) -> list[dict[str, Any]]:
    """Every foreign key of one SQLite schema, read once and cached (for keys that point at a table)."""
    return _cached(connection, "schema_foreign_keys", (schema,), lambda insp: _sqlite_foreign_keys(insp, schema))
