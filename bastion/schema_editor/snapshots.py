"""A dropped table's snapshot: the statements that recreate it and, when it is small, its rows (T37).

``take`` runs inside drop.run's transaction (on MySQL/MariaDB: just before the DROP, on the same
connection), in a savepoint of its own, so a snapshot that cannot be taken never stops the drop:

- SQLite: the definition is the table's and its indexes' SQL exactly as sqlite_master holds it
  (AUTOINCREMENT, CHECKs, WITHOUT ROWID and all; SQLAlchemy's reflection finds CHECKs by searching that
  text, so a name or literal holding "CHECK (" would become a constraint: T02).
- PostgreSQL and MySQL/MariaDB: the table reflected by SQLAlchemy and compiled for the same engine:
  CREATE TABLE and CREATE INDEX (on MySQL/MariaDB the foreign keys follow as ALTER TABLE, since MySQL makes
  an index of its own for a foreign key created with the table, which would clash with the reflected one).
  What the DROP takes along is put back: a PostgreSQL serial column whose sequence the DROP removes becomes
  SERIAL again (its DEFAULT nextval(...) would name a missing sequence) and the restore sets the new
  sequence past the highest value, as for identity columns; GENERATED ALWAYS identity columns are created
  BY DEFAULT so the kept values can be inserted, then set back (``finish``). What reflection misses is read
  from the catalogue: MariaDB column CHECKs; PostgreSQL EXCLUDE constraints (pg_get_constraintdef, before
  the rows), row-level security and its policies (after the rows). Generated (computed) columns are
  recreated, not filled.
- MySQL/MariaDB reflection skips a column or key it cannot parse (a line feed in its name) with a warning
  only: the reflected columns and indexes are compared with information_schema (COLUMNS, STATISTICS) and,
  unless they are the same, no definition is kept (``INEXACT``): a snapshot never claims a table it would
  give back incomplete (T37). The drop itself still runs, as the user confirmed it.
- the rows: their sizes are summed in SQL first (the first DROP_SNAPSHOT_MAX_ROWS + 1 rows), so a table
  over DROP_SNAPSHOT_MAX_BYTES is never read, nor any value larger than it (T28); then they are read as the
  driver gives them, streamed, and encoded losslessly as JSON (``encode``), then compressed with zlib.
  Reading stops as soon as DROP_SNAPSHOT_MAX_ROWS or DROP_SNAPSHOT_MAX_BYTES (of JSON) is passed; the
  table is then dropped with its definition kept and the reason recorded. On PostgreSQL the table is
  locked against writes first, so what is measured is what is read, and what is read is what is dropped.
  PostgreSQL values of types without a faithful Python form (JSON, arrays, intervals, enums, ranges,
  network addresses...) are kept as the server's text and written back with a CAST to the column's type.

``store`` saves a snapshot with the drop's audit event; ``summary`` is what the event's details carry
(the hashes, so the tamper-evident chain covers the snapshot); bastion.audit.integrity checks them
(a restore, and `bastion audit verify`); ``rows_of`` is what a restore reads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from sqlalchemy import Column, LargeBinary, MetaData, Table, Text, cast, column, func, inspect, literal, select, text
from sqlalchemy import Connection as SAConnection
from sqlalchemy import table as sql_table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CheckConstraint, CreateIndex, ExecutableDDLElement
from sqlalchemy.sql import sqltypes
from sqlalchemy.types import UserDefinedType

from bastion.audit.integrity import definition_digest
from bastion.audit.models import AuditEvent, TableSnapshot
from bastion.connections import limits
from bastion.connections.counts import RowCount
from bastion.explorer.schema import TableInfo
from bastion.schema_editor.definition import create_table_sql

FORMAT = 1
READ_BATCH = 500
_HEAD = b'{"format":1,"rows":['
_TAIL = b"]}"
NO_DEFINITION = "the definition could not be written for this database"
INEXACT = "Bastion could not read its definition exactly"
# PostgreSQL types whose values the driver gives as faithful Python values; everything else is kept as text.
_PG_NATIVE = (sqltypes.Integer, sqltypes.Numeric, sqltypes.Float, sqltypes.Boolean, sqltypes.String,
              sqltypes.Date, sqltypes.DateTime, sqltypes.Time, sqltypes.LargeBinary, sqltypes.Uuid)
_NEXTVAL = re.compile(r"^\s*nextval\(", re.IGNORECASE)
_PG_OWNED_SEQUENCE = text(
    "SELECT pg_get_serial_sequence(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), "
    "CAST(:table AS text)), CAST(:column AS text))")
_PG_EXCLUSIONS = text(
    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'x' AND conrelid = "
    "to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), CAST(:table AS text))) "
    "ORDER BY conname")
_PG_ROW_SECURITY = text(
    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = "
    "to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), CAST(:table AS text)))")
_PG_POLICIES = text(
    "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
    "WHERE schemaname = coalesce(CAST(:schema AS text), current_schema()) AND tablename = CAST(:table AS text) "
    "ORDER BY policyname")
_PG_POLICY_KINDS = frozenset({"PERMISSIVE", "RESTRICTIVE"})
_PG_POLICY_COMMANDS = frozenset({"ALL", "SELECT", "INSERT", "UPDATE", "DELETE"})
_MYSQL_COLUMNS = text(
    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = coalesce(:schema, DATABASE()) "
    "AND TABLE_NAME = :table ORDER BY ORDINAL_POSITION")
_MYSQL_INDEXES = text(
    "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = coalesce(:schema, DATABASE()) "
    "AND TABLE_NAME = :table")
# hidden: 0 a column, 1 a virtual table's hidden column, 2 and 3 generated columns (recreated, not filled)
_SQLITE_COLUMNS = text("SELECT name FROM pragma_table_xinfo(:table, :schema) WHERE hidden = 0 ORDER BY cid")
_MARIADB_COLUMN_CHECKS = text(
    "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = coalesce(:schema, DATABASE()) AND TABLE_NAME = :table AND LEVEL = 'Column' "
    "ORDER BY CONSTRAINT_NAME")


class NotKept(Exception):
    """The rows are not kept; ``str()`` says why, to follow "rows not kept: "."""


class Inexact(Exception):
    """What SQLAlchemy reflected is not the whole table (or not in a form Bastion writes back): keep nothing."""


# --- values --------------------------------------------------------------------------------------------
def encode(value: Any) -> Any:
    """A driver value as JSON, losslessly: None, booleans, integers, strings and finite floats as they are,
    anything else as a two-item list [tag, text] (a plain value is never a list). NotKept for other types."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ["f", repr(value)]
    if isinstance(value, Decimal):
        return ["n", str(value)]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["b", base64.b64encode(bytes(value)).decode("ascii")]
    if isinstance(value, datetime):
        return ["T", value.isoformat()]
    if isinstance(value, date):
        return ["D", value.isoformat()]
    if isinstance(value, time):
        return ["t", value.isoformat()]
    if isinstance(value, timedelta):
        return ["i", [value.days, value.seconds, value.microseconds]]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    raise NotKept(f"it holds values of a kind Bastion does not keep ({type(value).__name__})")


_DECODERS: dict[str, Any] = {
    "f": float, "n": Decimal, "b": base64.b64decode, "T": datetime.fromisoformat, "D": date.fromisoformat,
    "t": time.fromisoformat, "i": lambda parts: timedelta(*parts), "u": uuid.UUID,
}


def decode(value: Any) -> Any:
    """The driver value ``encode`` was given."""
    if isinstance(value, list):
        tag, payload = value
        return _DECODERS[tag](payload)
    return value


# --- the definition ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Definition:
    dialect: str
    create: str  # CREATE TABLE, as the database receives it
    indexes: tuple[str, ...]  # run after it, before the rows
    finish: tuple[str, ...]  # run after the rows
    columns: tuple[dict[str, Any], ...]  # kept columns: name, cast (kept as text), sequence (set past the max)
    binary: frozenset[str] = frozenset()  # kept columns of bytes (measured as bytes, not as text); not stored


class _Serial(UserDefinedType):
    """SERIAL, BIGSERIAL or SMALLSERIAL: a column that gets a new sequence of its own."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **_: Any) -> str:
        return self.spec


class _Name(str):
    """An identifier, for _Ddl to quote with the dialect's preparer."""


class _ServerText(str):
    """SQL the server itself wrote (pg_get_constraintdef, pg_get_expr), for _Ddl to keep as it is."""


class _Ddl(ExecutableDDLElement):
    """A statement made of keywords (constants of this module), names and tables quoted by the dialect's
    preparer (a list of names: comma-separated), and text the server wrote; % escaped like the rest."""

    def __init__(self, *parts: str | Table | list[str]) -> None:
        self.parts = parts


def _written(part: str | Table | list[str], compiler: Any) -> str:
    if isinstance(part, list):
        return ", ".join(_written(item, compiler) for item in part)
    if isinstance(part, Table):
        return compiler.preparer.format_table(part)
    if isinstance(part, _Name):
        return compiler.preparer.quote(str(part))
    if isinstance(part, _ServerText):
        return part.replace("%", "%%") if compiler.dialect.paramstyle in ("format", "pyformat") else str(part)
    return part


@compiles(_Ddl)
def _compile_ddl(element: _Ddl, compiler: Any, **_: Any) -> str:
    return " ".join(_written(part, compiler) for part in element.parts)


def server_text(statement: Any, dialect: Any) -> str:
    """``statement`` compiled for ``dialect``, as the database receives it (see definition.create_table_sql)."""
    compiled = str(statement.compile(dialect=dialect)).strip()
    return compiled.replace("%%", "%") if dialect.paramstyle in ("format", "pyformat") else compiled


def driver_text(sql: str, dialect: Any) -> str:
    """The inverse of server_text: what exec_driver_sql needs to send ``sql`` (PyMySQL and psycopg read %)."""
    return sql.replace("%", "%%") if dialect.paramstyle in ("format", "pyformat") else sql


def _unbacktick(name: str) -> str:
    """SQLAlchemy's MySQL reflection leaves backticks doubled in column, key and constraint names (a`b comes
    back as a``b; see reflection._name): the name as the database spells it."""
    return name.replace("``", "`")


def _fix_column_name(_inspector: Any, _table: Table, column_info: dict[str, Any]) -> None:
    column_info["name"] = _unbacktick(column_info["name"])  # keys and indexes still find it by the reflected name


def _reflect(conn: SAConnection, info: TableInfo) -> Table:
    """The table as SQLAlchemy reflects it, with stand-ins for the tables its foreign keys refer to."""
    mysql = conn.dialect.name == "mysql"
    metadata = MetaData()
    table = Table(info.name, metadata, schema=info.schema, autoload_with=conn, resolve_fks=False,
                  listeners=[("column_reflect", _fix_column_name)] if mysql else [])
    for fk in inspect(conn).get_foreign_keys(info.name, schema=info.schema):
        schema, name = fk["referred_schema"], fk["referred_table"]
        key = f"{schema}.{name}" if schema else name
        referred = metadata.tables.get(key)
        if referred is None:
            referred = Table(name, metadata, schema=schema)
        for reflected in fk["referred_columns"]:
            if reflected not in referred.c:  # found by the reflected name, written with the real one
                referred.append_column(Column(_unbacktick(reflected) if mysql else reflected, key=reflected))
    if mysql:
        for item in [*table.indexes, *table.constraints]:
            if isinstance(item.name, str):
                item.name = _unbacktick(item.name)
    return table


def _postgresql_columns(conn: SAConnection, info: TableInfo, table: Table) -> tuple[set[str], list[Any]]:
    """Serial and identity columns fixed for re-creation: (columns with a sequence, statements after the rows)."""
    sequences, finish = set(), []
    for col in table.columns:
        default = getattr(col.server_default, "arg", None)
        if col.identity is not None:
            sequences.add(col.name)
            if col.identity.always:
                col.identity.always = False  # the kept values are inserted first
                finish.append(_Ddl("ALTER TABLE", table, "ALTER COLUMN", _Name(col.name), "SET GENERATED ALWAYS"))
        elif isinstance(col.type, sqltypes.Integer) and _NEXTVAL.match(str(getattr(default, "text", default))):
            owned = conn.execute(_PG_OWNED_SEQUENCE,
                                 {"schema": info.schema, "table": info.name, "column": col.name}).scalar()
            if owned:  # the DROP removes the sequence: a SERIAL column makes a new one
                spec = ("BIGSERIAL" if isinstance(col.type, sqltypes.BigInteger)
                        else "SMALLSERIAL" if isinstance(col.type, sqltypes.SmallInteger) else "SERIAL")
                col.type, col.server_default = _Serial(spec), None
                sequences.add(col.name)
        col.autoincrement = False  # what SERIAL is, is decided above, not by SQLAlchemy's guess
    return sequences, finish


def _postgresql_exclusions(conn: SAConnection, info: TableInfo, table: Table) -> list[Any]:
    """EXCLUDE constraints (reflection leaves them out, and their indexes too), as the server writes them."""
    names = {"schema": info.schema, "table": info.name}
    return [_Ddl("ALTER TABLE", table, "ADD CONSTRAINT", _Name(name), _ServerText(clause))
            for name, clause in conn.execute(_PG_EXCLUSIONS, names)]


def _postgresql_row_security(conn: SAConnection, info: TableInfo, table: Table) -> list[Any]:
    """Row-level security (policies, ENABLE, FORCE), which reflection leaves out: run after the rows, so that
    a policy never refuses a kept row (FORCE applies policies to the owner, who restores)."""
    names = {"schema": info.schema, "table": info.name}
    statements: list[Any] = []
    for name, kind, roles, command, qual, check in conn.execute(_PG_POLICIES, names):
        if kind not in _PG_POLICY_KINDS or command not in _PG_POLICY_COMMANDS:
            raise Inexact(f"a policy of a kind Bastion does not write ({kind} {command})")
        to = [("PUBLIC" if role == "public" else _Name(role)) for role in roles]  # no role may be named public
        parts: list[Any] = ["CREATE POLICY", _Name(name), "ON", table, "AS", kind, "FOR", command, "TO", to]
        if qual is not None:
            parts += ["USING", _ServerText(f"({qual})")]
        if check is not None:
            parts += ["WITH CHECK", _ServerText(f"({check})")]
        statements.append(_Ddl(*parts))
    enabled, forced = conn.execute(_PG_ROW_SECURITY, names).one()
    if enabled:
        statements.append(_Ddl("ALTER TABLE", table, "ENABLE ROW LEVEL SECURITY"))
    if forced:
        statements.append(_Ddl("ALTER TABLE", table, "FORCE ROW LEVEL SECURITY"))
    return statements


def _mysql_constraints(conn: SAConnection, info: TableInfo, table: Table) -> list[Any]:
    """MariaDB column CHECKs (JSON's json_valid among them) added; foreign keys moved after the indexes.
    Inexact when reflection skipped a column (it does, with a warning only, for a line feed in a name) or an
    index (MySQL's functional indexes)."""
    names = {"schema": info.schema, "table": info.name}
    if list(conn.execute(_MYSQL_COLUMNS, names).scalars()) != [col.name for col in table.columns]:
        raise Inexact("the reflected columns are not the columns the database lists")
    reflected = {index.name for index in table.indexes} | ({"PRIMARY"} if table.primary_key.columns else set())
    if set(conn.execute(_MYSQL_INDEXES, names).scalars()) != reflected:
        raise Inexact("the reflected indexes are not the indexes the database lists")
    if getattr(conn.dialect, "is_mariadb", False):
        for name, clause in conn.execute(_MARIADB_COLUMN_CHECKS, {"schema": info.schema, "table": info.name}):
            table.append_constraint(CheckConstraint(text(clause), name=name))
    later = [AddConstraint(fk) for fk in table.foreign_key_constraints]
    for fk in list(table.foreign_key_constraints):
        table.constraints.discard(fk)
    return later


def _sqlite_definition(conn: SAConnection, info: TableInfo) -> Definition:
    """The CREATE TABLE and CREATE INDEX statements exactly as SQLite keeps them (the indexes SQLite makes for
    a PRIMARY KEY or UNIQUE have none: the CREATE TABLE makes them again); the columns from SQLite itself."""
    master = sql_table("sqlite_master", column("type"), column("name"), column("tbl_name"), column("sql"),
                       schema=info.schema)
    create = conn.execute(select(master.c.sql).where(master.c.type == "table", master.c.name == info.name)).scalar()
    if not create:
        raise Inexact("SQLite keeps no statement for this table")
    indexes = conn.execute(select(master.c.sql).where(
        master.c.type == "index", master.c.tbl_name == info.name, master.c.sql.is_not(None))
        .order_by(master.c.name)).scalars()
    columns = conn.execute(_SQLITE_COLUMNS, {"table": info.name, "schema": info.schema or "main"}).scalars()
    return Definition(dialect="sqlite", create=create, indexes=tuple(indexes), finish=(),
                      columns=tuple({"name": name, "cast": False, "sequence": False} for name in columns))


def _definition(conn: SAConnection, info: TableInfo) -> Definition:
    dialect = conn.dialect
    if dialect.name == "sqlite":
        return _sqlite_definition(conn, info)
    table = _reflect(conn, info)
    as_text = {col.name for col in table.columns if dialect.name == "postgresql" and (
        isinstance(col.type, sqltypes.Enum) or not isinstance(col.type, _PG_NATIVE))}
    sequences: set[str] = set()
    later: list[Any] = []
    finish: list[Any] = []
    if dialect.name == "postgresql":
        sequences, finish = _postgresql_columns(conn, info, table)
        later = _postgresql_exclusions(conn, info, table)
        finish += _postgresql_row_security(conn, info, table)
    elif dialect.name == "mysql":
        later = _mysql_constraints(conn, info, table)
    kept = [col for col in table.columns if col.computed is None]
    columns = tuple({"name": col.name, "cast": col.name in as_text, "sequence": col.name in sequences}
                    for col in kept)
    indexes = [CreateIndex(index) for index in sorted(table.indexes, key=lambda i: str(i.name))]
    return Definition(
        dialect=dialect.name, create=create_table_sql(table, dialect),
        indexes=tuple(server_text(statement, dialect) for statement in [*indexes, *later]),
        finish=tuple(server_text(statement, dialect) for statement in finish), columns=columns,
        binary=frozenset(col.name for col in kept if isinstance(col.type, sqltypes.LargeBinary)))


# --- the rows ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rows:
    count: int
    data: bytes  # zlib-compressed JSON
    json_bytes: int
    sha256: str  # of data


def size_label(size: int) -> str:
    """20 MB, 1.5 MB, 300 kB, 12 bytes."""
    for unit, factor in (("MB", 1024 * 1024), ("kB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _octets(value: Any, dialect: str, binary: bool) -> Any:
    """The size in bytes of a value as the driver gives it (NULL: 0), an SQL expression for ``dialect``."""
    if dialect == "sqlite":
        measured = func.length(cast(value, LargeBinary))  # length() of text counts characters, of a BLOB bytes
    elif dialect == "postgresql" and not binary:
        measured = func.octet_length(cast(value, Text))
    else:
        measured = func.octet_length(value)
    return func.coalesce(measured, 0)


def _measure(conn: SAConnection, source: Any, definition: Definition, max_rows: int, max_bytes: int) -> None:
    """NotKept when the first ``max_rows`` + 1 rows are too many or, summed in SQL, larger than ``max_bytes``:
    nothing of them is read then, not even one value (a JSON row is never smaller than its values' bytes)."""
    sizes = [_octets(source.c[c["name"]], definition.dialect, c["name"] in definition.binary)
             for c in definition.columns]
    row_size = sum(sizes[1:], sizes[0]) if sizes else literal(0)
    first = select(row_size.label("size")).select_from(source).limit(max_rows + 1).subquery()
    found, total = conn.execute(select(func.count(), func.coalesce(func.sum(first.c.size), 0))).one()
    if found > max_rows:
        raise NotKept(f"larger than {max_rows:,} rows")
    if total > max_bytes:
        raise NotKept(f"larger than {size_label(max_bytes)}")


def _named(info: TableInfo) -> Table:
    return Table(info.name, MetaData(), schema=info.schema, quote=True, quote_schema=True)


def _unfiltered(conn: SAConnection, info: TableInfo) -> None:
    """PostgreSQL: every row is read, none left out by row-level security. With row_security off, a read that
    a policy would filter fails instead; the owner's FORCE ROW LEVEL SECURITY is lifted for the rest of the
    drop's transaction (the DROP follows; a failure, or a snapshot without rows, undoes it)."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql("SET LOCAL row_security = off")
    _enabled, forced = conn.execute(_PG_ROW_SECURITY, {"schema": info.schema, "table": info.name}).one()
    if forced:
        conn.execute(_Ddl("ALTER TABLE", _named(info), "NO FORCE ROW LEVEL SECURITY"))


def _rows(conn: SAConnection, info: TableInfo, definition: Definition) -> Rows:
    """Every row of ``info``, measured first, then streamed; NotKept as soon as a limit is passed."""
    max_rows, max_bytes = settings.DROP_SNAPSHOT_MAX_ROWS, settings.DROP_SNAPSHOT_MAX_BYTES
    columns = definition.columns
    source = sql_table(info.name, *(column(c["name"]) for c in columns), schema=info.schema)
    statement = select(*(cast(source.c[c["name"]], Text) if c["cast"] else source.c[c["name"]] for c in columns))
    compressor = zlib.compressobj(9)
    parts, size, count = [compressor.compress(_HEAD)], len(_HEAD) + len(_TAIL), 0
    with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
        _unfiltered(conn, info)
        _measure(conn, source, definition, max_rows, max_bytes)
        # LIMIT: however the table grew since it was counted, no more than one row too many is read.
        result = conn.execute(statement.limit(max_rows + 1),
                              execution_options={"stream_results": True, "yield_per": READ_BATCH})
        try:
            for row in result:
                count += 1
                if count > max_rows:
                    raise NotKept(f"larger than {max_rows:,} rows")
                piece = (b"," if count > 1 else b"") + json.dumps(
                    [encode(value) for value in row], separators=(",", ":"), allow_nan=False).encode("utf-8")
                size += len(piece)
                if size > max_bytes:
                    raise NotKept(f"larger than {size_label(max_bytes)}")
                parts.append(compressor.compress(piece))
        finally:
            result.close()
    data = b"".join([*parts, compressor.compress(_TAIL), compressor.flush()])
    return Rows(count, data, size, hashlib.sha256(data).hexdigest())


def rows_of(snapshot: TableSnapshot) -> list[list[Any]]:
    """The kept rows of ``snapshot`` as driver values (check its sha256 first: restore.verify)."""
    inflater = zlib.decompressobj()
    data = inflater.decompress(bytes(snapshot.data or b""), snapshot.json_bytes + 1)
    if len(data) != snapshot.json_bytes or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("the kept rows are not the size their snapshot says")
    payload = json.loads(data)
    if payload.get("format") != FORMAT:
        raise ValueError("the kept rows are in a format this version does not read")
    return [[decode(value) for value in row] for row in payload["rows"]]


# --- taking and keeping --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    definition: Definition | None  # None: the table cannot be written for this engine, nothing is kept
    rows: Rows | None
    reason: str  # why the rows (or everything) were not kept; "" when they were

    @property
    def definition_sha256(self) -> str:
        d = self.definition
        return definition_digest(d.dialect, d.create, d.indexes, d.finish, d.columns) if d else ""


def _lock(conn: SAConnection, info: TableInfo) -> None:
    """PostgreSQL: no other session writes to the table from here to the DROP (which locks it anyway), so the
    rows measured are the rows read, and the rows read are the rows dropped. SQLite's BEGIN IMMEDIATE already
    keeps writers out; MySQL/MariaDB read both from one consistent snapshot (REPEATABLE READ)."""
    if conn.dialect.name != "postgresql":
        return
    try:
        with conn.begin_nested(), limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
            conn.execute(_Ddl("LOCK TABLE", _named(info), "IN SHARE ROW EXCLUSIVE MODE"))
    except DBAPIError:
        pass  # not granted (or not in time): the snapshot is read all the same, the DROP then waits its turn


def take(conn: SAConnection, info: TableInfo, count: RowCount | None) -> Snapshot:
    """The snapshot of table ``info``, read on ``conn`` inside the drop's transaction, before the DROP."""
    _lock(conn, info)
    try:
        with conn.begin_nested():
            definition = _definition(conn, info)
    except Inexact:
        return Snapshot(None, None, INEXACT)
    except (SQLAlchemyError, NotImplementedError, ValueError, TypeError, KeyError):
        # A type or clause SQLAlchemy cannot write back for this engine: nothing would restore it.
        return Snapshot(None, None, NO_DEFINITION)
    max_rows = settings.DROP_SNAPSHOT_MAX_ROWS
    if count is not None and count.value > max_rows:
        return Snapshot(definition, None, f"larger than {max_rows:,} rows")
    try:
        with conn.begin_nested():
            rows = _rows(conn, info, definition)
    except NotKept as exc:
        return Snapshot(definition, None, str(exc))
    except DBAPIError as exc:
        why = "they took too long to read" if limits.is_timeout(exc) else "they could not be read"
        return Snapshot(definition, None, why)
    return Snapshot(definition, rows, "")


def summary(snapshot: Snapshot) -> dict[str, Any]:
    """What the drop's audit event says of the snapshot: sizes, reason and the hashes that bind it to the chain."""
    found: dict[str, Any] = {"definition_kept": snapshot.definition is not None,
                             "rows_kept": snapshot.rows is not None}
    if snapshot.definition is not None:
        found["definition_sha256"] = snapshot.definition_sha256
    if snapshot.rows is not None:
        found.update(rows=snapshot.rows.count, bytes=len(snapshot.rows.data), json_bytes=snapshot.rows.json_bytes,
                     sha256=snapshot.rows.sha256)
    else:
        found["reason"] = snapshot.reason
    return found


def store(event: AuditEvent, snapshot: Snapshot) -> TableSnapshot | None:
    """Keep ``snapshot`` with the drop's ``event`` (call inside the transaction that wrote the event)."""
    definition, rows = snapshot.definition, snapshot.rows
    if definition is None:
        return None
    return TableSnapshot.objects.create(
        event=event, dialect=definition.dialect, create_sql=definition.create, index_sql=list(definition.indexes),
        finish_sql=list(definition.finish), columns=list(definition.columns), rows_kept=rows is not None,
        reason=snapshot.reason[:200], row_count=rows.count if rows else None, json_bytes=rows.json_bytes if rows else 0,
        data=rows.data if rows else None, sha256=rows.sha256 if rows else "",
        definition_sha256=snapshot.definition_sha256)
