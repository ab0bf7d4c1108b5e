"""The engine's guards around console statements (T21, T22, T28), on real SQLite files, PostgreSQL and MariaDB.

Statements run straight through ``exec_driver_sql`` inside the block, bypassing the
console's parser: what is refused here is refused by the engine.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from bastion.access.models import Action, ColumnMode
from bastion.connections import limits
from bastion.connections.engines import get_engine
from bastion.connections.sqlite_guard import install_authorizer, policy_applied
from bastion.console import guards
from bastion.console.guards import TransactionEnded, guarded_transaction, sqlite_grant_policy
from bastion.console.refs import TableRef
from tests.engines import Target, sqlite_target, target  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

TIMEOUT = 0.5
SLOW = {
    "sqlite": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) "
              "SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
}
# About a quarter of a second of SQLite work: it completes when no time limit is left over.
SQLITE_SOME_WORK = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000) "
                    "SELECT count(*) FROM c")


# --- the GrantOracle protocol's test double ------------------------------------------------------
@dataclass
class Grants:
    """Grants held as (action, table) pairs, table None meaning the whole connection; columns visible unless listed."""

    held: set[tuple[Action, TableRef | None]] = field(default_factory=set)
    modes: dict[tuple[TableRef, str], ColumnMode] = field(default_factory=dict)
    fixed: set[tuple[Action, TableRef, str]] = field(default_factory=set)  # columns the user may not set
    default: ColumnMode = ColumnMode.VISIBLE  # the mode of columns not in ``modes``
    asked: list[tuple[Any, ...]] = field(default_factory=list)

    def column_mode(self, table: TableRef, column: str) -> ColumnMode:
        self.asked.append(("column_mode", table, column))
        return self.modes.get((table, column), self.default)

    def may(self, action: Action, table: TableRef | None = None, column: str | None = None) -> bool:
        self.asked.append((action, table, column))
        if table is not None and column is not None and (action, table, column) in self.fixed:
            return False
        return (action, None) in self.held or (table is not None and (action, table) in self.held)

    def plus(self, *held: tuple[Action, TableRef | None]) -> Grants:
        return Grants(self.held | set(held), dict(self.modes), set(self.fixed), self.default)


def everything() -> Grants:
    return Grants({(action, None) for action in Action})


# --- engine-independent parts: every engine -----------------------------------------------------
@dataclass
class Items:
    """A table ``items`` (id, label) holding one row (1, 'a') on the target."""

    target: Target

    def sql(self, template: str) -> str:
        """``template`` with ``{t}`` (and ``{other}``: a new table) replaced by the quoted, qualified names."""
        return template.format(t=self.target.table("items"), other=self.target.table("other"))

    def labels(self) -> list[str]:
        """The table's contents as a fresh, unguarded connection sees them."""
        if self.target.kind == "sqlite":
            with sqlite3.connect(self.target.sqlite_path) as raw:
                rows = raw.execute("SELECT label FROM items ORDER BY id").fetchall()
            raw.close()
            return [row[0] for row in rows]
        with self.target.admin.connect() as conn:
            return list(conn.exec_driver_sql(self.sql("SELECT label FROM {t} ORDER BY id")).scalars())


@pytest.fixture
def items(target) -> Items:  # noqa: F811
    table = Items(target)
    target.run(table.sql("CREATE TABLE {t} (id INTEGER PRIMARY KEY, label VARCHAR(20))"),
               table.sql("INSERT INTO {t} (id, label) VALUES (1, 'a')"))
    return table


def is_read_only_refusal(kind: str, error: sa_exc.DBAPIError) -> bool:
    original = error.orig
    if kind == "postgresql":
        return isinstance(original, psycopg.errors.ReadOnlySqlTransaction)
    if kind == "mysql":
        return isinstance(original, pymysql.MySQLError) and original.args[0] == 1792  # READ ONLY transaction
    return original.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY


def read_only_state(conn: Connection, kind: str) -> tuple[Any, ...]:
    """The session settings a block may change, read in a transaction of their own."""
    if kind == "postgresql":
        state = tuple(conn.exec_driver_sql(f"SHOW {name}").scalar_one()
                      for name in ("transaction_read_only", "default_transaction_read_only", "statement_timeout"))
    elif kind == "mysql":
        state = tuple(conn.exec_driver_sql("SELECT @@SESSION.tx_read_only, @@SESSION.max_statement_time").one())
    else:
        state = (conn.connection.dbapi_connection.execute("PRAGMA query_only").fetchone()[0],)
    conn.rollback()
    return state


CLEAN = {"postgresql": ("off", "off", "0"), "mysql": (0, 0.0), "sqlite": (0,)}


@pytest.mark.parametrize("statement", [
    "INSERT INTO {t} (id, label) VALUES (2, 'b')",
    "UPDATE {t} SET label = 'z'",
    "DELETE FROM {t}",
    "CREATE TABLE {other} (id INTEGER)",
    "CREATE TEMPORARY TABLE scratch (id INTEGER)",
    "DROP TABLE {t}",
])
def test_T21_a_read_only_run_refuses_writes_and_ddl(target, items, statement):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(sa_exc.DBAPIError) as caught, guarded_transaction(conn, read_only=True, timeout=5):
            conn.exec_driver_sql(items.sql(statement))
        assert is_read_only_refusal(target.kind, caught.value), caught.value
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]
    assert items.labels() == ["a"]


# Each engine's way back to read-write within a transaction.
SWITCH = {"postgresql": "SET TRANSACTION READ WRITE", "mysql": "SET TRANSACTION READ WRITE",
          "sqlite": "PRAGMA query_only = OFF"}


def test_T21_a_read_only_run_cannot_switch_itself_to_read_write(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(sa_exc.DBAPIError), guarded_transaction(conn, read_only=True, timeout=5):
            conn.exec_driver_sql(items.sql("SELECT count(*) FROM {t}")).all()
            conn.exec_driver_sql(SWITCH[target.kind])
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]
    assert items.labels() == ["a"]


def test_T21_a_read_write_run_keeps_its_changes_only_when_the_caller_commits(target, items):  # noqa: F811
    engine = get_engine(target.connection)
    with engine.connect() as conn:
        with guarded_transaction(conn, read_only=False, timeout=5):
            conn.exec_driver_sql(items.sql("INSERT INTO {t} (id, label) VALUES (2, 'uncommitted')"))
        assert items.labels() == ["a"]
        with guarded_transaction(conn, read_only=False, timeout=5):
            conn.exec_driver_sql(items.sql("INSERT INTO {t} (id, label) VALUES (3, 'kept')"))
            conn.commit()
        assert not conn.in_transaction()
    assert items.labels() == ["a", "kept"]


def test_T21_an_exception_inside_the_block_rolls_back(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(RuntimeError, match="caller"), guarded_transaction(conn, read_only=False, timeout=5):
            conn.exec_driver_sql(items.sql("UPDATE {t} SET label = 'changed'"))
            raise RuntimeError("the caller failed")
        assert not conn.in_transaction()
    assert items.labels() == ["a"]


def test_T21_T28_a_slow_statement_is_stopped_at_the_timeout(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(sa_exc.DBAPIError) as caught, guarded_transaction(conn, read_only=True, timeout=TIMEOUT):
            conn.exec_driver_sql(SLOW[target.kind]).all()
        assert limits.is_timeout(caught.value), caught.value
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]


def _block(conn: Connection, kind: str, items: Items, outcome: str, read_only: bool, policy: Any) -> None:
    """Run one guarded block that ends the way ``outcome`` says."""
    if outcome == "client gone":
        def stream() -> Iterator[Any]:
            with guarded_transaction(conn, read_only=read_only, timeout=TIMEOUT, sqlite_policy=policy):
                yield from conn.execution_options(stream_results=True, max_row_buffer=1).exec_driver_sql(
                    items.sql("SELECT id FROM {t}"))

        rows = stream()
        next(rows)
        rows.close()  # what Django does with a streaming response whose client went away
        return
    expected = {"success": None, "error": sa_exc.DBAPIError, "timeout": sa_exc.DBAPIError,
                "exception": KeyError}[outcome]
    expecting = pytest.raises(expected) if expected else contextlib.nullcontext()
    with expecting, guarded_transaction(conn, read_only=read_only, timeout=TIMEOUT, sqlite_policy=policy):
        conn.exec_driver_sql(items.sql("SELECT count(*) FROM {t}")).all()
        if not read_only:
            conn.exec_driver_sql(items.sql("INSERT INTO {t} (id, label) VALUES (9, 'x')"))
        if outcome == "error":
            conn.exec_driver_sql("SELECT * FROM no_such_table").all()
        elif outcome == "timeout":
            conn.exec_driver_sql(SLOW[kind]).all()
        elif outcome == "exception":
            raise KeyError("the caller's own bug")
        elif not read_only:
            conn.commit()


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "read-write"])
@pytest.mark.parametrize("outcome", ["success", "error", "timeout", "exception", "client gone"])
def test_T21_T28_the_pooled_connection_is_clean_after_the_block(target, items, outcome, read_only):  # noqa: F811
    engine = get_engine(target.connection)
    policy = None
    if target.kind == "sqlite":
        label = (TableRef(None, "items"), "label")
        policy = sqlite_grant_policy(Grants(everything().held, {label: ColumnMode.HIDDEN}))
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        before = read_only_state(conn, target.kind)
        assert before == CLEAN[target.kind]
        _block(conn, target.kind, items, outcome, read_only, policy)
        assert not conn.in_transaction() and not conn.invalidated
    with engine.connect() as conn:
        assert conn.connection.dbapi_connection is raw  # the same pooled connection, next user
        assert read_only_state(conn, target.kind) == before
        conn.exec_driver_sql(items.sql("INSERT INTO {t} (id, label) VALUES (42, 'next user')"))  # writable
        if target.kind == "sqlite":
            # No time limit left over: a statement longer than the block's limit completes.
            assert conn.exec_driver_sql(SQLITE_SOME_WORK).scalar_one() == 1_000_000
            # The policy is gone (it hid the label column) and the T22 guard is still on.
            assert conn.exec_driver_sql(items.sql("SELECT label FROM {t} WHERE id = 1")).scalar_one() == "a"
            with pytest.raises(sa_exc.DBAPIError, match="not authorized"):
                conn.exec_driver_sql("ATTACH DATABASE ':memory:' AS elsewhere")
        conn.rollback()
    assert items.labels() == (["a", "x"] if outcome == "success" and not read_only else ["a"])


def test_T21_statements_after_the_callers_commit_are_refused(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(TransactionEnded), guarded_transaction(conn, read_only=False, timeout=5):
            conn.exec_driver_sql(items.sql("INSERT INTO {t} (id, label) VALUES (2, 'b')"))
            conn.commit()
            conn.exec_driver_sql(items.sql("DELETE FROM {t}"))
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]
    assert items.labels() == ["a", "b"]


# Each engine's way to make the next transaction read-write (a parser gap would have to let it through).
SESSION_READ_WRITE = {"postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                      "mysql": "SET SESSION TRANSACTION READ WRITE",
                      "sqlite": "SELECT 1"}  # none there: query_only belongs to the connection


def test_T21_a_commit_typed_inside_a_read_only_run_stops_the_run(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(TransactionEnded), guarded_transaction(conn, read_only=True, timeout=5):
            conn.exec_driver_sql(SESSION_READ_WRITE[target.kind])
            conn.exec_driver_sql("COMMIT")
            conn.exec_driver_sql(items.sql("DROP TABLE {t}"))
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]
    assert items.labels() == ["a"]


def test_T21_no_transaction_may_be_open_when_the_block_starts(target):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()  # autobegins
        with pytest.raises(sa_exc.InvalidRequestError), guarded_transaction(conn, read_only=True, timeout=5):
            pass
        conn.rollback()


def test_T21_an_sqlite_policy_is_only_for_sqlite(target):  # noqa: F811
    policy = sqlite_grant_policy(everything())
    with get_engine(target.connection).connect() as conn:
        expecting = contextlib.nullcontext() if target.kind == "sqlite" else pytest.raises(ValueError)
        with expecting, guarded_transaction(conn, read_only=True, timeout=5, sqlite_policy=policy):
            pass
        assert not conn.in_transaction()


def test_T21_a_setting_that_cannot_be_put_back_discards_the_connection(target, monkeypatch):  # noqa: F811
    @contextlib.contextmanager
    def limit_that_breaks_on_exit(*_args: Any) -> Iterator[None]:
        try:
            yield
        finally:
            raise OSError("could not put the time limit back")

    monkeypatch.setattr(guards.limits, "statement_time_limit", limit_that_breaks_on_exit)
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(OSError), guarded_transaction(conn, read_only=True, timeout=5):
            pass
        assert conn.invalidated
    with get_engine(target.connection).connect() as conn:
        # The caller's own exception wins over the cleanup's.
        with pytest.raises(KeyError), guarded_transaction(conn, read_only=True, timeout=5):
            raise KeyError("the caller's")
        assert conn.invalidated


def test_T21_a_guard_that_fails_to_start_leaves_the_connection_usable(target):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        with pytest.raises(ValueError), guarded_transaction(conn, read_only=True, timeout=0):
            pass
        assert not conn.invalidated and not conn.in_transaction()
        assert read_only_state(conn, target.kind) == CLEAN[target.kind]


def test_T21_settings_come_back_as_they_were_not_as_the_default(target, items):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        raw = conn.connection.dbapi_connection
        if target.kind == "postgresql":
            conn.exec_driver_sql("SET SESSION statement_timeout = '7s'")
        elif target.kind == "mysql":
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        else:
            raw.set_authorizer(None)
            raw.execute("PRAGMA query_only = ON")
            install_authorizer(raw)
        conn.commit()
        before = read_only_state(conn, target.kind)
        for read_only in (True, False):
            with contextlib.suppress(sa_exc.DBAPIError), guarded_transaction(conn, read_only=read_only, timeout=1):
                conn.exec_driver_sql(items.sql("SELECT count(*) FROM {t}")).all()
            assert read_only_state(conn, target.kind) == before
        conn.invalidate()  # not back into the pool with these settings


# --- SQLite: the user's grants in the authorizer --------------------------------------------------
SCHEMA = """
    CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT, secret TEXT);
    CREATE TABLE notes (body TEXT);
    CREATE TABLE log (msg TEXT);
    CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT);
    CREATE VIEW people_view AS SELECT id, name, secret FROM people;
    CREATE VIEW people_names AS SELECT id, name FROM people;
    INSERT INTO people VALUES (1, 'ada', 'ada@example.com', 's3cret');
    CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN INSERT INTO log VALUES ('person added'); END;
    INSERT INTO notes VALUES ('hello');
    INSERT INTO counters (label) VALUES ('first');
"""
PEOPLE, NOTES, LOG, COUNTERS, VIEW, NAMES = (TableRef(None, name) for name in (
    "people", "notes", "log", "counters", "people_view", "people_names"))


def reader() -> Grants:
    """Query and view on people, notes and the views; people.email masked, people.secret hidden."""
    return Grants({(action, table) for table in (PEOPLE, NOTES, VIEW, NAMES) for action in (Action.QUERY, Action.VIEW)},
                  {(PEOPLE, "email"): ColumnMode.MASKED, (PEOPLE, "secret"): ColumnMode.HIDDEN})


def writer(*actions: Action, table: TableRef = PEOPLE) -> Grants:
    """A reader who also holds query_write and ``actions`` on ``table``."""
    return reader().plus((Action.QUERY_WRITE, table), *((action, table) for action in actions))


@dataclass
class Db:
    """A registered SQLite file, and running statements on it the way the console does."""

    target: Target

    @property
    def path(self) -> Path:
        return self.target.sqlite_path

    def triggers(self) -> frozenset[str]:
        """The file's triggers, read as the console reads them before a run."""
        with sqlite3.connect(self.path) as raw:
            names = frozenset(r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        raw.close()
        return names

    def run(self, grants: Grants, *statements: str, read_only: bool = False, commit: bool = True) -> list[Any]:
        """Run ``statements`` as the console would for ``grants``' user; each one's rows (or None)."""
        results = []
        with get_engine(self.target.connection).connect() as conn:
            policy = sqlite_grant_policy(grants, trigger_names=self.triggers())
            with guarded_transaction(conn, read_only=read_only, timeout=5, sqlite_policy=policy):
                for statement in statements:
                    result = conn.exec_driver_sql(statement)
                    results.append(result.all() if result.returns_rows else None)
                if commit and not read_only:
                    conn.commit()
        return results

    def refused(self, grants: Grants, *statements: str, read_only: bool = False) -> str:
        """Run ``statements``; the last must be refused by the authorizer. The refusal's message."""
        with pytest.raises(sa_exc.DBAPIError, match=r"not authorized|prohibited") as caught:
            self.run(grants, *statements, read_only=read_only)
        return str(caught.value.orig)

    def query(self, sql: str) -> list[Any]:
        with sqlite3.connect(self.path) as raw:
            rows = raw.execute(sql).fetchall()
        raw.close()
        return rows


@pytest.fixture
def people(sqlite_target) -> Db:  # noqa: F811
    sqlite_target.run(SCHEMA)
    return Db(sqlite_target)


def test_T21_sqlite_reports_what_the_policy_relies_on():
    raw = sqlite3.connect(":memory:", isolation_level=None)
    raw.executescript(SCHEMA)
    seen: list[tuple[Any, ...]] = []

    def record(*report: Any) -> int:
        seen.append(report)
        return sqlite3.SQLITE_OK

    raw.set_authorizer(record)

    def reports(sql: str) -> list[tuple[Any, ...]]:
        seen.clear()
        raw.execute(sql).fetchall()
        return list(seen)

    read, write = sqlite3.SQLITE_READ, sqlite3.SQLITE_DELETE
    assert (read, "people", "", None, None) in reports("SELECT count(*) FROM people")
    assert (read, "notes", "ROWID", "main", None) in reports("SELECT _rowid_ FROM notes")
    assert (read, "people", "id", "main", None) in reports("SELECT rowid FROM people")  # the column it aliases
    via_view = reports("SELECT name FROM people_view")
    assert (read, "people_view", "name", "main", None) in via_view
    assert {(read, "people", c, "main", "people_view") for c in ("id", "name", "secret")} <= set(via_view)
    assert (read, "people", "secret", "main", "people_audit") in reports(
        "WITH people_audit AS (SELECT secret FROM people) SELECT * FROM people_audit")
    assert (sqlite3.SQLITE_INSERT, "log", None, "main", "people_audit") in reports(
        "INSERT INTO people (name) VALUES ('bob')")
    assert reports("INSERT INTO counters (label) VALUES ('x')") == [
        (sqlite3.SQLITE_INSERT, "counters", None, "main", None)]  # sqlite_sequence is written unreported
    create = reports("CREATE TABLE extra (a)")
    assert create[:2] == [(sqlite3.SQLITE_INSERT, "sqlite_master", None, "main", None),
                          (sqlite3.SQLITE_CREATE_TABLE, "extra", None, "main", None)]
    index = reports("CREATE INDEX extra_a ON extra (a)")
    assert index[:3] == [(sqlite3.SQLITE_INSERT, "sqlite_master", None, "main", None),
                         (sqlite3.SQLITE_CREATE_INDEX, "extra_a", "extra", "main", None),
                         (read, "extra", "a", "main", None)]
    assert (sqlite3.SQLITE_REINDEX, "extra_a", None, "main", None) in index
    drop = reports("DROP TABLE counters")
    position = drop.index((sqlite3.SQLITE_DROP_TABLE, "counters", None, "main", None))
    assert drop[position + 1] == (write, "counters", None, "main", None)
    assert (write, "sqlite_sequence", None, "main", None) in drop
    assert (sqlite3.SQLITE_UPDATE, "sqlite_sequence", "name", "main", None) in reports(
        "ALTER TABLE extra RENAME TO extra2")
    assert reports("REINDEX people") == []
    with pytest.raises(sqlite3.DatabaseError, match="reserved for internal use"):
        reports("CREATE TABLE sqlite_mine (a)")
    tvf = reports("SELECT name FROM pragma_table_info('people')")
    assert (read, "pragma_table_info", "name", "main", None) in tvf
    assert (sqlite3.SQLITE_PRAGMA, "table_info", "people", None, None) in tvf
    raw.executescript("""PRAGMA foreign_keys = ON;
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE);""")
    assert (write, "child", None, "main", None) in reports("DELETE FROM parent")  # as if the user wrote it
    raw.close()


@pytest.mark.parametrize("sql", [
    "SELECT id, name FROM people",
    "SELECT name FROM people WHERE id = 1 ORDER BY name",
    "SELECT rowid, name FROM people",
    "SELECT count(*) FROM people",
    "SELECT id, name FROM people_names",
    "SELECT rowid, body FROM notes",
    "SELECT n.body FROM notes AS n JOIN people AS p ON p.id = 1",
    "SELECT value FROM json_each('[1, 2]')",
    "SELECT name FROM sqlite_master",
])
def test_T21_visible_columns_can_be_read(people, sql):
    assert people.run(reader(), sql, read_only=True)[0]


@pytest.mark.parametrize("sql", [
    "SELECT secret FROM people",
    "SELECT email FROM people",  # masked: the console cannot mask, so it refuses
    "SELECT * FROM people",
    "SELECT secret FROM people_view",
    "SELECT name FROM people_view",  # a view reads all its definition names, used or not
    "SELECT count(*) FROM people_view",
    "SELECT x FROM (SELECT secret AS x FROM people)",
    "WITH c AS (SELECT secret FROM people) SELECT * FROM c",
    "SELECT name FROM people WHERE secret = 's3cret'",
    "SELECT name FROM people ORDER BY email",
    "SELECT count(*) FROM people WHERE length(secret) > 0",
    "SELECT name FROM people WHERE id IN (SELECT id FROM people WHERE secret LIKE 's%')",
])
def test_T21_hidden_and_masked_columns_are_refused(people, sql):
    assert "prohibited" in people.refused(reader(), sql, read_only=True)


def test_T21_reading_a_table_needs_the_query_grant_even_without_columns(people):
    for sql in ("SELECT count(*) FROM log", "SELECT 1 FROM log", "SELECT EXISTS (SELECT 1 FROM log)",
                "SELECT rowid FROM log", "SELECT count(*) FROM main.log"):
        people.refused(reader(), sql, read_only=True)
    people.refused(reader().plus((Action.QUERY, LOG)), "SELECT count(*) FROM log", read_only=True)  # not seen
    assert people.run(reader().plus((Action.QUERY, LOG), (Action.VIEW, LOG)), "SELECT count(*) FROM log",
                      read_only=True) == [[(0,)]]


def test_T21_counting_rows_reads_no_column(people):
    grants = Grants({(Action.QUERY, PEOPLE), (Action.VIEW, PEOPLE)}, {(PEOPLE, "name"): ColumnMode.VISIBLE},
                    default=ColumnMode.HIDDEN)
    assert people.run(grants, "SELECT count(*) FROM people", "SELECT name FROM people", read_only=True) == [
        [(1,)], [("ada",)]]
    people.refused(grants, "SELECT count(id) FROM people", read_only=True)


def test_T21_rowid_of_an_integer_primary_key_is_that_column(people):
    grants = reader()
    grants.modes[(PEOPLE, "id")] = ColumnMode.HIDDEN
    people.refused(grants, "SELECT rowid FROM people", read_only=True)
    assert people.run(grants, "SELECT count(*) FROM people", read_only=True) == [[(1,)]]


def test_T21_a_trigger_name_on_a_cte_does_not_unlock_its_reads(people):
    assert "people_audit" in people.triggers()
    people.refused(reader(), "WITH people_audit AS (SELECT secret FROM people) SELECT * FROM people_audit",
                   read_only=True)


def test_T21_inserts_and_deletes_need_query_write_and_their_grant(people):
    people.refused(reader(), "INSERT INTO notes VALUES ('x')")
    people.refused(reader().plus((Action.INSERT, NOTES)), "INSERT INTO notes VALUES ('x')")  # no query_write
    people.run(writer(Action.INSERT, table=NOTES), "INSERT INTO notes VALUES ('x')")
    people.refused(writer(Action.INSERT, table=NOTES), "DELETE FROM notes")
    people.run(writer(Action.DELETE, table=NOTES), "DELETE FROM notes WHERE body = 'x'")
    assert people.query("SELECT body FROM notes") == [("hello",)]


def test_T21_updates_need_the_update_grant_on_each_column_set(people):
    people.refused(writer(), "UPDATE people SET name = 'eve'")
    grants = writer(Action.INSERT, Action.UPDATE)
    grants.fixed.add((Action.UPDATE, PEOPLE, "email"))
    people.refused(grants, "UPDATE people SET email = 'eve@example.com'")
    people.refused(grants, "INSERT INTO people (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET email = 'x'")
    people.run(grants, "UPDATE people SET name = 'eve' WHERE id = 1")
    people.run(grants, "INSERT INTO people (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = 'eva'")
    # A WHERE on a hidden column is a read of it.
    people.refused(grants, "UPDATE people SET name = 'x' WHERE secret = 's3cret'")
    assert people.query("SELECT name, email FROM people") == [("eva", "ada@example.com")]


def test_T21_returning_a_hidden_column_is_refused(people):
    people.refused(writer(Action.INSERT), "INSERT INTO people (name) VALUES ('bob') RETURNING secret")


def test_T21_writes_made_by_an_existing_trigger_are_allowed(people):
    grants = writer(Action.INSERT)  # nothing at all on log
    people.run(grants, "INSERT INTO people (name) VALUES ('bob')")
    assert people.query("SELECT msg FROM log") == [("person added",)]
    # Without the trigger trusted (a trigger created during the run), its writes are the user's own.
    with get_engine(people.target.connection).connect() as conn, pytest.raises(sa_exc.DBAPIError), \
            guarded_transaction(conn, read_only=False, timeout=5, sqlite_policy=sqlite_grant_policy(grants)):
        conn.exec_driver_sql("INSERT INTO people (name) VALUES ('carol')")


def test_T21_an_autoincrement_insert_works(people):
    people.run(writer(Action.INSERT, table=COUNTERS), "INSERT INTO counters (label) VALUES ('second')")
    assert people.query("SELECT seq FROM sqlite_sequence WHERE name = 'counters'") == [(2,)]


@pytest.mark.parametrize("sql, table, action", [
    ("CREATE TABLE extra (id INTEGER PRIMARY KEY AUTOINCREMENT, a UNIQUE)", TableRef(None, "extra"), Action.ALTER),
    ("CREATE TABLE copy AS SELECT id, name FROM people", TableRef(None, "copy"), Action.ALTER),
    ("CREATE VIEW names AS SELECT name FROM people", TableRef(None, "names"), Action.ALTER),
    ("CREATE INDEX people_name ON people (name)", PEOPLE, Action.ALTER),
    ("ALTER TABLE people ADD COLUMN born TEXT", PEOPLE, Action.ALTER),
    ("ALTER TABLE counters RENAME TO tallies", COUNTERS, Action.ALTER),
    ("DROP TABLE counters", COUNTERS, Action.DROP),  # AUTOINCREMENT: its sqlite_sequence row goes too
    ("DROP TABLE people", PEOPLE, Action.DROP),  # its trigger goes too
    ("DROP VIEW people_view", VIEW, Action.DROP),
    ("CREATE TEMP TABLE scratch (a)", TableRef("temp", "scratch"), Action.ALTER),
])
def test_T21_ddl_needs_alter_or_drop_on_its_table(people, sql, table, action):
    other = Action.DROP if action == Action.ALTER else Action.ALTER
    people.refused(writer(other, Action.INSERT, Action.DELETE, Action.UPDATE, table=table), sql)
    people.refused(reader().plus((action, table)), sql)  # no query_write
    people.run(writer(action, table=table), sql)


def test_T21_an_index_may_cover_a_hidden_column_without_making_it_readable(people):
    grants = writer(Action.ALTER)
    people.run(grants, "CREATE INDEX people_secret ON people (secret)", commit=False)
    people.refused(grants, "CREATE INDEX people_secret ON people (secret)", "SELECT secret FROM people")
    people.refused(grants, "CREATE INDEX people_secret ON people (secret) WHERE email > ''",
                   "SELECT name FROM people WHERE secret = 's3cret'")


def test_T21_the_first_autoincrement_table_creates_sqlite_sequence(sqlite_target):  # noqa: F811
    fresh = Db(sqlite_target)
    assert fresh.query("SELECT name FROM sqlite_master") == []
    table = TableRef(None, "tally")
    fresh.run(Grants({(Action.QUERY_WRITE, table), (Action.ALTER, table), (Action.INSERT, table)}),
              "CREATE TABLE tally (id INTEGER PRIMARY KEY AUTOINCREMENT, n)", "INSERT INTO tally (n) VALUES (1)")
    assert fresh.query("SELECT name, seq FROM sqlite_sequence") == [("tally", 1)]


def test_T21_an_index_unlocks_no_read_after_it_even_without_statement_boundaries(people):
    # The policy on its own, without guarded_transaction telling it where statements start.
    raw = sqlite3.connect(people.path, isolation_level=None)
    with policy_applied(raw, sqlite_grant_policy(writer(Action.ALTER))):
        raw.execute("CREATE INDEX people_secret ON people (secret)")
        with pytest.raises(sqlite3.DatabaseError, match="prohibited"):
            raw.execute("SELECT secret FROM people")
    raw.close()


def test_T21_ddl_is_rolled_back_with_the_block(people):
    people.run(writer(Action.ALTER, table=TableRef(None, "extra")), "CREATE TABLE extra (a)", commit=False)
    assert people.query("SELECT name FROM sqlite_master WHERE name = 'extra'") == []


def test_T21_what_ddl_brings_along_does_not_outlive_its_statement(people):
    dropper = writer(Action.DROP, table=COUNTERS)
    people.refused(dropper, "DROP TABLE counters", "DELETE FROM sqlite_sequence")
    people.refused(writer(Action.ALTER, table=COUNTERS), "ALTER TABLE counters ADD COLUMN x",
                   "UPDATE sqlite_sequence SET name = 'other'")
    assert people.query("SELECT name, seq FROM sqlite_sequence") == [("counters", 1)]


def test_T21_creating_a_trigger_needs_manage(people):
    sql = "CREATE TRIGGER notes_log AFTER INSERT ON notes BEGIN INSERT INTO log VALUES ('note'); END"
    people.refused(writer(Action.ALTER, table=NOTES), sql)
    people.run(writer(Action.ALTER, table=NOTES).plus((Action.MANAGE, None)), sql)
    assert "notes_log" in people.triggers()


def test_T21_a_trigger_recreated_during_the_run_is_not_trusted(people):
    grants = writer(Action.INSERT, Action.ALTER, Action.DROP).plus((Action.MANAGE, None))
    people.refused(grants, "DROP TRIGGER people_audit",
                   "CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN DELETE FROM log; END",
                   "INSERT INTO people (name) VALUES ('mallory')")


@pytest.mark.parametrize("sql, extra, allowed", [
    ("PRAGMA table_info(people)", None, True),
    ("PRAGMA main.table_xinfo('people')", None, True),
    ("PRAGMA index_list(people)", None, True),
    ("PRAGMA foreign_key_list(people)", None, True),
    ("SELECT name FROM pragma_table_info('people')", None, True),
    ("PRAGMA table_info(log)", None, False),
    ("SELECT name FROM pragma_table_info('log')", None, False),
    ("PRAGMA foreign_keys", None, False),
    ("PRAGMA foreign_keys", (Action.MANAGE, None), True),
    ("PRAGMA foreign_key_check", None, False),
    ("PRAGMA database_list", (Action.MANAGE, None), True),
])
def test_T21_pragmas_as_specified(people, sql, extra, allowed):
    grants = reader().plus(extra) if extra else reader()
    if allowed:
        people.run(grants, sql, read_only=True)
    else:
        people.refused(grants, sql, read_only=True)


@pytest.mark.parametrize("sql", ["ANALYZE", "ANALYZE people", "CREATE VIRTUAL TABLE words USING fts5(w)"])
def test_T21_maintenance_needs_query_write_and_manage(people, sql):
    table = TableRef(None, "words")
    grants = writer(Action.ALTER, Action.DROP, Action.INSERT).plus((Action.QUERY_WRITE, table), (Action.ALTER, table))
    people.refused(grants, sql)
    people.refused(grants.plus((Action.MANAGE, None)), sql)  # query_write on the whole connection is missing
    if sql.startswith("ANALYZE"):
        # Its statistics table is SQLite's own: no grant on it is needed.
        people.run(reader().plus((Action.QUERY_WRITE, None), (Action.MANAGE, None)), sql)
    else:
        people.run(everything(), sql)  # the module creates tables of its own


def test_T21_the_policy_denies_what_it_does_not_know():
    policy = sqlite_grant_policy(everything())
    assert policy(9999, "people", None, "main", None) == sqlite3.SQLITE_DENY
    assert policy(sqlite3.SQLITE_ATTACH, "/tmp/x.db", None, None, None) == sqlite3.SQLITE_DENY
    assert policy(sqlite3.SQLITE_TRANSACTION, "BEGIN", None, None, None) == sqlite3.SQLITE_OK


def test_T21_answers_are_memoised_per_report(people):
    grants = reader()
    people.run(grants, "SELECT name, name, id FROM people", "SELECT name FROM people WHERE name = 'ada'",
               read_only=True)
    assert grants.asked.count(("column_mode", PEOPLE, "name")) == 1


def test_T21_the_policy_applies_to_statements_prepared_before_it(people):
    with get_engine(people.target.connection).connect() as conn:
        sql = "SELECT secret FROM people"
        assert conn.exec_driver_sql(sql).scalar_one() == "s3cret"  # prepared and cached under the guard alone
        conn.rollback()
        with pytest.raises(sa_exc.DBAPIError, match="prohibited"), guarded_transaction(
                conn, read_only=True, timeout=5, sqlite_policy=sqlite_grant_policy(reader())):
            conn.exec_driver_sql(sql).all()
        assert conn.exec_driver_sql(sql).scalar_one() == "s3cret"  # the next user's grants are not this one's
        conn.rollback()


def test_T21_sqlite_refuses_writes_to_its_catalogue_that_the_policy_lets_through(people):
    catalogue = people.query("SELECT * FROM sqlite_master")
    for sql in ("DELETE FROM sqlite_master", "UPDATE sqlite_master SET sql = 'x'",
                "INSERT INTO sqlite_master VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x (a)')"):
        with pytest.raises(sa_exc.DBAPIError, match="may not be modified"):
            people.run(everything(), sql)
    assert people.query("SELECT * FROM sqlite_master") == catalogue


# --- T22: for everyone, whatever their grants ----------------------------------------------------
@pytest.fixture
def elsewhere(tmp_path_factory) -> Path:
    """A directory outside the SQLite roots."""
    return tmp_path_factory.mktemp("elsewhere")


def test_T22_attach_fails_and_creates_no_file(people, elsewhere):
    path = elsewhere / f"x-{uuid.uuid4().hex}.db"
    people.refused(everything(), f"ATTACH DATABASE '{path}' AS x")
    assert not path.exists()


def test_T22_vacuum_into_fails_and_creates_no_file(people, elsewhere):
    path = elsewhere / f"copy-{uuid.uuid4().hex}.db"
    # Inside the console's transaction SQLite refuses VACUUM before it asks the authorizer
    # about the ATTACH it makes (the guard's own tests cover VACUUM INTO outside one).
    with pytest.raises(sa_exc.DBAPIError, match="VACUUM"):
        people.run(everything(), f"VACUUM INTO '{path}'")
    assert not path.exists()


def test_T22_load_extension_fails(people):
    assert "load_extension" in people.refused(everything(), "SELECT load_extension('x')")


def test_T22_writable_schema_fails(people):
    people.refused(everything(), "PRAGMA writable_schema = 1")
