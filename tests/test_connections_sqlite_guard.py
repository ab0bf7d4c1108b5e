"""T22: SQLite connections opened by Bastion cannot reach the filesystem, and files outside the roots are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text

from bastion.connections.engines import build_engine
from bastion.connections.models import Connection
from bastion.connections.sqlite_guard import (
    SqlitePathRefused,
    check_sqlite_path,
    foreign_keys_off,
    install_authorizer,
    make_authorizer,
    policy_applied,
)


@pytest.fixture
def root(tmp_path, settings) -> Path:
    directory = tmp_path / "databases"
    directory.mkdir()
    settings.SQLITE_ROOTS = [directory]
    return directory


@pytest.fixture
def outside(tmp_path) -> Path:
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def make_db(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, secret TEXT);
        CREATE TABLE pets (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES people (id), name TEXT);
        CREATE INDEX pets_owner ON pets (owner_id);
        INSERT INTO people VALUES (1, 'ada', 's3cret');
    """)
    db.commit()
    db.close()
    return path


@pytest.fixture
def engine(root):
    engine = build_engine(Connection(name="t", engine="sqlite", sqlite_path=str(make_db(root / "app.db"))))
    yield engine
    engine.dispose()


def refused(engine, sql: str, **params) -> str:
    """Run ``sql``; return the refusal message (the test fails if it ran)."""
    with engine.connect() as conn, pytest.raises(sa_exc.DBAPIError) as caught:
        conn.execute(text(sql), params)
    return str(caught.value.orig)


# --- how SQLite reports things to an authorizer (the guard relies on it) ------------------------
def test_T22_sqlite_reports_vacuum_into_as_an_attach_of_the_target(tmp_path):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a)")
    seen = []
    db.set_authorizer(lambda action, arg1, *rest: seen.append((action, arg1)) or sqlite3.SQLITE_OK)
    target = tmp_path / "copy.db"
    db.execute("VACUUM INTO ?", (str(target),))
    assert seen[0] == (sqlite3.SQLITE_ATTACH, str(target))


# --- filesystem access through SQL ----------------------------------------------------------------
@pytest.mark.parametrize("sql", [
    "ATTACH DATABASE :path AS evil",
    "ATTACH DATABASE 'file:' || :path || '?mode=rwc' AS evil",
])
def test_T22_attach_is_refused_and_creates_no_file(engine, outside, sql):
    target = outside / "x.db"
    assert "not authorized" in refused(engine, sql, path=str(target))
    assert not target.exists()


def test_T22_attach_of_memory_and_detach_are_refused(engine):
    assert "not authorized" in refused(engine, "ATTACH DATABASE ':memory:' AS scratch")
    assert "not authorized" in refused(engine, "DETACH DATABASE main")


def test_T22_vacuum_into_is_refused_and_creates_no_file(engine, outside):
    target = outside / "copy.db"
    assert "denied" in refused(engine, "VACUUM INTO :path", path=str(target))
    assert not target.exists()


def test_T22_load_extension_is_refused_by_the_authorizer(engine):
    assert "load_extension" in refused(engine, "SELECT load_extension('/tmp/evil.so')")
    assert make_authorizer()(sqlite3.SQLITE_FUNCTION, None, "load_extension", None, None) == sqlite3.SQLITE_DENY


def test_T22_fts3_tokenizer_pointer_function_is_refused(engine):
    assert "fts3_tokenizer" in refused(engine, "SELECT fts3_tokenizer('simple')")


@pytest.mark.parametrize("sql", [
    "PRAGMA writable_schema = ON",
    "PRAGMA writable_schema",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA trusted_schema = ON",
    "PRAGMA journal_mode = OFF",
    "PRAGMA schema_version = 7",
    "PRAGMA main.user_version = 3",
    "PRAGMA temp_store_directory = '/tmp'",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA cache_size = -1000000",
])
def test_T22_pragmas_that_change_state_are_refused(engine, sql):
    assert "not authorized" in refused(engine, sql)


def test_T22_sqlite_master_cannot_be_written(engine):
    refused(engine, "UPDATE sqlite_master SET sql = 'CREATE TABLE people (x)' WHERE name = 'people'")
    with engine.connect() as conn:
        assert "secret" in conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'people'")).scalar_one()


def test_T22_raw_page_access_is_refused():
    authorize = make_authorizer()
    assert authorize(sqlite3.SQLITE_UPDATE, "sqlite_dbpage", "data", "main", None) == sqlite3.SQLITE_DENY
    assert authorize(sqlite3.SQLITE_CREATE_VTABLE, "pages", "sqlite_dbpage", "main", None) == sqlite3.SQLITE_DENY


# --- what must keep working under the guard -----------------------------------------------------
def test_T22_reading_pragmas_queries_and_schema_changes_still_work(engine):
    with engine.begin() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert [row[1] for row in conn.execute(text("PRAGMA main.table_info(people)"))] == ["id", "name", "secret"]
        assert conn.execute(text("SELECT count(*) FROM pragma_index_list('pets')")).scalar_one() == 1
        assert conn.execute(text("SELECT value FROM json_each('[7]')")).scalar_one() == 7
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text("ALTER TABLE notes ADD COLUMN created TEXT"))
        conn.execute(text("CREATE INDEX notes_created ON notes (created)"))
        conn.execute(text("DROP TABLE notes"))


def test_T22_a_file_cannot_call_application_functions_from_its_own_schema(root):
    # trusted_schema=OFF: views and triggers inside a registered file may not run
    # functions Bastion's connection adds (here SQLAlchemy's REGEXP).
    path = make_db(root / "booby.db")
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE VIEW trap AS SELECT name FROM people WHERE name REGEXP 'a'")
    engine = build_engine(Connection(name="t", engine="sqlite", sqlite_path=str(path)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 'ada' REGEXP 'a'")).scalar_one() == 1  # fine when typed directly
        with pytest.raises(sa_exc.DBAPIError, match="unsafe use of"):
            conn.execute(text("SELECT * FROM trap"))
    engine.dispose()


def test_T22_foreign_keys_are_enforced(engine):
    with engine.connect() as conn, pytest.raises(sa_exc.IntegrityError):
        conn.execute(text("INSERT INTO pets (owner_id, name) VALUES (99, 'stray')"))


def test_T22_reflection_works_under_the_guard(engine):
    with engine.connect() as conn:
        insp = inspect(conn)
        assert insp.get_table_names() == ["people", "pets"]
        assert [c["name"] for c in insp.get_columns("pets")] == ["id", "owner_id", "name"]
        assert insp.get_foreign_keys("pets")[0]["referred_table"] == "people"
        assert insp.get_indexes("pets")[0]["name"] == "pets_owner"


def test_T22_every_pooled_connection_is_guarded(engine, outside):
    target = outside / "x.db"
    connections = [engine.connect() for _ in range(4)]  # four distinct DBAPI connections at once
    try:
        assert len({id(c.connection.dbapi_connection) for c in connections}) == 4
        for conn in connections:
            with pytest.raises(sa_exc.DBAPIError):
                conn.execute(text("ATTACH DATABASE :p AS evil"), {"p": str(target)})
    finally:
        for conn in connections:
            conn.close()
    assert not target.exists()


def test_T22_a_missing_file_is_not_created(root):
    path = make_db(root / "gone.db")
    engine = build_engine(Connection(name="t", engine="sqlite", sqlite_path=str(path)))
    path.unlink()
    # Two layers: the path check at connect, and SQLite's mode=rw under it.
    with pytest.raises((SqlitePathRefused, sa_exc.OperationalError)):
        engine.connect()
    assert not path.exists()


# --- the policy hook (per-user grants build on it) ----------------------------------------------
def test_policy_can_hide_columns_and_refuse_tables_but_never_loosens_the_guard(root, outside):
    db = sqlite3.connect(make_db(root / "p.db"))
    install_authorizer(db)

    def policy(action, arg1, arg2, database, source):
        if action == sqlite3.SQLITE_READ and (arg1, arg2) == ("people", "secret"):
            return sqlite3.SQLITE_IGNORE  # the column reads as NULL
        if action == sqlite3.SQLITE_READ and arg1 == "pets":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK  # says yes to everything else, ATTACH included

    with policy_applied(db, policy):
        assert db.execute("SELECT name, secret FROM people").fetchall() == [("ada", None)]
        with pytest.raises(sqlite3.DatabaseError):
            db.execute("SELECT name FROM pets")
        with pytest.raises(sqlite3.DatabaseError):
            db.execute("ATTACH DATABASE ? AS evil", (str(outside / "x.db"),))
    assert db.execute("SELECT secret FROM people").fetchall() == [("s3cret",)]  # policy gone after the block
    with pytest.raises(sqlite3.DatabaseError):
        db.execute("ATTACH DATABASE ? AS evil", (str(outside / "x.db"),))  # the guard stays
    assert not (outside / "x.db").exists()
    db.close()


# --- which files may be registered --------------------------------------------------------------
def test_T22_a_file_inside_the_root_is_accepted_by_its_real_path(root):
    path = make_db(root / "ok.db")
    assert check_sqlite_path(str(path)) == path.resolve()
    assert check_sqlite_path("ok.db") == path.resolve()  # relative to the first root


def test_T22_a_path_outside_the_roots_is_refused(root, outside):
    path = make_db(outside / "x.db")
    with pytest.raises(SqlitePathRefused, match="outside the directories allowed"):
        check_sqlite_path(path)


def test_T22_dot_dot_cannot_climb_out_of_the_root(root, outside):
    make_db(outside / "x.db")
    with pytest.raises(SqlitePathRefused, match="outside"):
        check_sqlite_path(root / ".." / "elsewhere" / "x.db")
    with pytest.raises(SqlitePathRefused, match="outside"):
        check_sqlite_path("../elsewhere/x.db")


def test_T22_a_symlink_escaping_the_root_is_refused(root, outside):
    (root / "link.db").symlink_to(make_db(outside / "x.db"))
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SqlitePathRefused, match="outside"):
        check_sqlite_path(root / "link.db")
    with pytest.raises(SqlitePathRefused, match="outside"):
        check_sqlite_path(root / "linkdir" / "x.db")


def test_T22_the_engine_checks_the_path_again_at_connect(root, outside):
    real = make_db(root / "real.db")
    link = root / "current.db"
    link.symlink_to(real)
    engine = build_engine(Connection(name="t", engine="sqlite", sqlite_path=str(link)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM people")).scalar_one() == "ada"
    engine.dispose()
    link.unlink()
    link.symlink_to(make_db(outside / "x.db"))  # swapped after registration
    with pytest.raises(SqlitePathRefused):
        engine.connect()


@pytest.mark.parametrize("name, message", [
    ("missing.db", "There is no file"),
    ("subdir", "not a regular file"),
    ("notes.txt", "not an SQLite database"),
])
def test_T22_non_database_paths_are_refused(root, name, message):
    (root / "subdir").mkdir()
    (root / "notes.txt").write_text("hello")
    with pytest.raises(SqlitePathRefused, match=message):
        check_sqlite_path(root / name)


def test_T22_foreign_keys_off_is_for_bastions_own_block_only(engine):
    """The schema editor's SQLite rebuild switches keys off for one block; the guard stays on inside it, and
    keys are on again after; inside a transaction (where SQLite ignores the pragma) it refuses to start."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        with foreign_keys_off(raw):
            assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 0
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                raw.execute("PRAGMA foreign_keys = ON")  # nothing else may change pragmas meanwhile
            with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
                raw.execute("ATTACH DATABASE ':memory:' AS other")
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        raw.execute("BEGIN")
        raw.execute("INSERT INTO people VALUES (2, 'bo', 'x')")
        with pytest.raises(sqlite3.OperationalError, match="could not be switched off"), foreign_keys_off(raw):
            pass
        raw.execute("ROLLBACK")
        assert raw.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert "not authorized" in refused(engine, "PRAGMA foreign_keys = OFF")
