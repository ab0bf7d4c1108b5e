"""The table as the engine holds it now, read for a change, and what SQLite needs to rebuild it safely.

SQLAlchemy's reflection misses some things a change must keep or must not trust: SQLite
foreign key actions written beside a column and AUTOINCREMENT (added here), MySQL names
holding a backtick (refused here). A SQLite rebuild drops the table: it runs with foreign
keys off (SQLite's documented procedure) and checks every key before the commit, and is
refused where it would lose what SQLAlchemy does not reproduce (triggers, COLLATE,
generated columns, index expressions, ...).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection as SAConnection
from sqlalchemy import ForeignKeyConstraint, MetaData, Table, text
from sqlalchemy.exc import NoSuchTableError
from sqlglot.dialects.sqlite import SQLite
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from bastion.connections.errors import one_line
from bastion.connections.sqlite_guard import foreign_keys_off
from bastion.explorer.schema import TableInfo
from bastion.schema_editor import alterations
from bastion.schema_editor.alter_checks import Refused

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
    with foreign keys off, see rebuilding, and checks them all before it commits.)
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



@contextmanager
def rebuilding(conn: SAConnection) -> Iterator[None]:
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


def check_keys(conn: SAConnection, info: TableInfo) -> None:
    """Every key of the rebuilt table, and of the tables that refer to it, still finds its row (else Refused)."""
    tables = {info.name, *conn.execute(_SQLITE_REFERRING, {"table": info.name}).scalars()}
    if any(conn.execute(_SQLITE_KEY_CHECK, {"table": name}).scalar_one() for name in sorted(tables)):
        raise Refused(KEYS_BROKEN)


