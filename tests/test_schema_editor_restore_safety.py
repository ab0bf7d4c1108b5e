"""Dropped-table snapshots and their restore, regression tests of the security review (T33, T34, T28, T02, T37).

Tables are dropped and restored through HTTP against real engines, as in tests/test_schema_editor_restore.py;
what the databases hold afterwards is read as an administrator.
"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection as metadata_db
from sqlalchemy import insert

from bastion.audit.integrity import definition_digest
from bastion.audit.models import AuditEvent, Outcome, TableSnapshot
from bastion.audit.services import record
from bastion.cli import main as bastion_cli
from bastion.connections.engines import dispose_engine
from bastion.schema_editor import snapshots
from tests.engines import HOSTILE, mysql_target, postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import rows
from tests.test_schema_editor_drop import problem_in, signed, tables
from tests.test_schema_editor_restore import (
    admin_table,
    drop_table,
    query,
    restore_page,
    restore_url,
    restored_events,
    restorer,
    shown_sql,
)

pytestmark = pytest.mark.django_db


# --- T33: one restore, one event, and a success only once it happened ------------------------------------
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_T33_a_restore_refused_at_commit_is_audited_once_as_a_failure(client, request, kind):
    """A DEFERRABLE INITIALLY DEFERRED foreign key is checked at COMMIT: the restore is refused then, and the
    log holds that failure alone (no success recorded before the COMMIT), with no table left behind."""
    t = request.getfixturevalue(f"{kind}_target")
    t.run(f"CREATE TABLE {t.table('owners')} (id INTEGER PRIMARY KEY)",
          f"CREATE TABLE {t.table('pets')} (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, "
          f"CONSTRAINT pets_owner_fk FOREIGN KEY (owner) REFERENCES {t.table('owners')} (id) "
          f"DEFERRABLE INITIALLY DEFERRED)",
          f"INSERT INTO {t.table('owners')} VALUES (1)", f"INSERT INTO {t.table('pets')} VALUES (1, 1)")  # noqa: S608
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "pets")
    t.run(f"DELETE FROM {t.table('owners')}")  # noqa: S608 (the kept row now refers to nothing)
    response = c.post(restore_url(dropped))
    assert response.status_code == 409
    assert "refused the kept rows" in problem_in(response.content.decode())  # told without the database's text
    assert "pets" not in tables(t)
    [event] = restored_events()
    assert event.outcome == Outcome.FAILURE and "refused the kept rows" in event.details["error"]

    t.run(f"INSERT INTO {t.table('owners')} VALUES (1)")  # noqa: S608 (the owner is back: it commits)
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, "pets") == [{"id": 1, "owner": 1}]
    assert [e.outcome for e in restored_events().order_by("seq")] == [Outcome.FAILURE, Outcome.SUCCESS]


# --- T34: `bastion audit verify` sees a changed, deleted or added snapshot --------------------------------
def _drop_snapshot_triggers() -> None:
    """What an attacker with write access to the metadata database does first."""
    with metadata_db.cursor() as cursor:
        if metadata_db.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_snapshot_no_update")
            cursor.execute("DROP TRIGGER audit_snapshot_no_delete")
        else:
            cursor.execute("DROP TRIGGER audit_snapshot_no_change ON audit_tablesnapshot")


@pytest.mark.parametrize("how", ["statement", "rows", "deleted", "added"])
def test_T34_verify_finds_a_changed_deleted_or_added_snapshot(client, sqlite_target, capsys, how):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY, label TEXT)", "INSERT INTO people VALUES (1, 'one')")
    dropped = drop_table(signed(client, restorer(t)), t, "people")
    snapshot = TableSnapshot.objects.get()
    assert bastion_cli(["audit", "verify"]) == 0
    assert "and 1 table snapshots" in capsys.readouterr().out
    named = dropped.seq
    if how == "added":  # a snapshot for an event that kept none: it must not pass for one
        other = record("test.other")
        statements = ("CREATE TABLE people (id INTEGER)", [], [], [{"name": "id", "cast": False, "sequence": False}])
        TableSnapshot.objects.create(event=other, dialect="sqlite", create_sql=statements[0],
                                     definition_sha256=definition_digest("sqlite", *statements))
        named = other.seq
    else:
        _drop_snapshot_triggers()
        with metadata_db.cursor() as cursor:
            if how == "statement":
                cursor.execute("UPDATE audit_tablesnapshot SET create_sql = %s WHERE id = %s",
                               [snapshot.create_sql.replace("label", "label TEXT, evil"), snapshot.pk])
            elif how == "rows":
                cursor.execute("UPDATE audit_tablesnapshot SET data = %s WHERE id = %s", [b"", snapshot.pk])
            else:
                cursor.execute("DELETE FROM audit_tablesnapshot WHERE id = %s", [snapshot.pk])
    assert bastion_cli(["audit", "verify"]) == 1
    assert f"BROKEN at event #{named}:" in capsys.readouterr().err


# --- T28: the snapshot reads about as much as it may keep --------------------------------------------------
def _peak_of_drop(c: Any, t: Any, name: str) -> tuple[AuditEvent, int]:
    tracemalloc.start()
    try:
        dropped = drop_table(c, t, name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return dropped, peak


def test_T28_dropping_a_table_over_the_snapshot_size_does_not_read_it(client, target, settings):  # noqa: F811
    """240 rows of 250 kB (60 MB) with a 1 MB limit: their sizes are summed in SQL, no row is read."""
    t = target
    settings.DROP_SNAPSHOT_MAX_BYTES = 1024 * 1024
    kind = "LONGTEXT" if t.kind == "mysql" else "TEXT"
    t.run(f"CREATE TABLE {t.table('big')} (id INTEGER PRIMARY KEY, v {kind})")
    table = admin_table(t, "big")
    for start in range(0, 240, 40):
        t.execute(insert(table).values([{"id": n, "v": f"{n:06d}" + "x" * 250_000} for n in range(start, start + 40)]))
    dropped, peak = _peak_of_drop(signed(client, restorer(t)), t, "big")
    assert dropped.details["snapshot"]["rows_kept"] is False
    assert dropped.details["snapshot"]["reason"] == "larger than 1 MB"
    assert peak < 20 * 1024 * 1024, f"dropping read {peak / 1e6:.0f} MB for a 1 MB snapshot limit"


def test_T28_one_value_over_the_snapshot_size_is_never_read_whole(client, target, settings):  # noqa: F811
    t = target
    settings.DROP_SNAPSHOT_MAX_BYTES = 1024 * 1024
    kind = "LONGTEXT" if t.kind == "mysql" else "TEXT"
    t.run(f"CREATE TABLE {t.table('huge')} (id INTEGER PRIMARY KEY, v {kind})")
    t.execute(insert(admin_table(t, "huge")).values(id=1, v="x" * 12_000_000))  # 12 MB
    dropped, peak = _peak_of_drop(signed(client, restorer(t)), t, "huge")
    assert dropped.details["snapshot"]["reason"] == "larger than 1 MB"
    assert peak < 8 * 1024 * 1024, f"dropping read {peak / 1e6:.0f} MB for a 1 MB snapshot limit"


def test_T28_a_table_within_the_size_is_kept_as_before(client, target, settings):  # noqa: F811
    """Bytes are measured as bytes (not as their hex text): 600 kB of bytes fit a 1 MB limit as base64."""
    t = target
    settings.DROP_SNAPSHOT_MAX_BYTES = 1024 * 1024
    kind = {"mysql": "LONGBLOB", "postgresql": "bytea"}.get(t.kind, "BLOB")
    t.run(f"CREATE TABLE {t.table('blob')} (id INTEGER PRIMARY KEY, v {kind}, label VARCHAR(20))")
    t.execute(insert(admin_table(t, "blob")).values(id=1, v=b"\x00\xff" * 300_000, label="Zürich"))
    before = rows(t, "blob")
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "blob")
    assert dropped.details["snapshot"]["rows_kept"] is True
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, "blob") == before


# --- T02: names and literals stay names and literals in the restore's statement ---------------------------
def _sqlite_master(t: Any) -> list[tuple]:
    return [tuple(r) for r in query(t, "SELECT type, name, tbl_name, sql FROM sqlite_master "
                                       "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")]


@pytest.mark.parametrize("column", ['"x CHECK (length(label) > 100)" TEXT',
                                   "note TEXT DEFAULT 'CHECK (length(label) > 100)'"])
def test_T02_sqlite_text_in_a_name_or_default_never_becomes_a_check_of_the_restored_table(
        client, sqlite_target, column):  # noqa: F811
    """SQLAlchemy finds SQLite CHECKs by searching the table's SQL for "CHECK (", inside quoted names and
    literals too: the snapshot keeps SQLite's own statement instead, so no such constraint appears."""
    t = sqlite_target
    t.run(f"CREATE TABLE people (id INTEGER PRIMARY KEY, {column}, label TEXT)",
          "INSERT INTO people (id, label) VALUES (1, 'short')")
    before, master = rows(t, "people"), _sqlite_master(t)
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "people")
    assert TableSnapshot.objects.get().create_sql.count("CHECK (length") == 1  # the name or literal itself
    response = c.post(restore_url(dropped))
    assert response.status_code == 302, problem_in(response.content.decode())
    assert rows(t, "people") == before and _sqlite_master(t) == master


def test_T02_T37_sqlite_keeps_the_table_and_its_indexes_word_for_word(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    name = HOSTILE[0].replace('"', '""')  # x"; DROP TABLE t; --
    t.run(f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT COLLATE NOCASE '
          "CHECK (length(label) < 50) DEFAULT 'it''s', n INT, UNIQUE (label, n))",
          f'CREATE INDEX "ix ""odd""" ON "{name}" (lower(label)) WHERE n > 0',
          f'CREATE TRIGGER keep AFTER INSERT ON "{name}" BEGIN SELECT 1; END',
          f'INSERT INTO "{name}" (label, n) VALUES (\'a\', 1), (\'B\', 2)')  # noqa: S608 (quoted above)
    before, master = rows(t, HOSTILE[0]), _sqlite_master(t)
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, HOSTILE[0])
    snapshot = TableSnapshot.objects.get()
    kept = {sql for _type, _name, _table, sql in master}
    assert snapshot.create_sql in kept and list(snapshot.index_sql) == [sql for typ, *_, sql in master
                                                                         if typ == "index" and sql]
    assert shown_sql(restore_page(c, dropped)) == [snapshot.create_sql, *snapshot.index_sql]
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, HOSTILE[0]) == before
    assert _sqlite_master(t) == [row for row in master if row[0] != "trigger"]  # triggers are not kept (said)


# --- T37: a snapshot that says it can restore the table restores all of it ----------------------------------
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # production does not turn warnings into errors
@pytest.mark.parametrize("missed", ["column", "unique key"])
def test_T37_mysql_what_reflection_misses_keeps_no_snapshot_and_says_so(client, mysql_target, missed):  # noqa: F811
    """SQLAlchemy's MySQL reflection skips a column or a key whose name holds a line feed (with a warning
    only): the drop (confirmed by the user) still runs, but nothing claims the table can come back."""
    t = mysql_target
    extra = {"column": "`sec\nret` VARCHAR(20)", "unique key": "UNIQUE KEY `one\nlabel` (label)"}[missed]
    t.run(f"CREATE TABLE people (id INTEGER PRIMARY KEY, label VARCHAR(20), {extra})",
          "INSERT INTO people (id, label) VALUES (1, 'b')")
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "people")
    assert "people" not in tables(t)
    assert dropped.outcome == Outcome.SUCCESS
    assert dropped.details["snapshot"] == {"definition_kept": False, "rows_kept": False, "reason": snapshots.INEXACT}
    assert not TableSnapshot.objects.exists()
    log = c.get("/audit/").content.decode()
    assert "not restorable: Bastion could not read its definition exactly" in log
    assert restore_url(dropped) not in log and c.get(restore_url(dropped)).status_code == 404


def _pg_security(t: Any, table: str) -> dict[str, Any]:
    """Row-level security, policies and EXCLUDE constraints of a table, as the catalogue says."""
    flags = query(t, "SELECT relrowsecurity, relforcerowsecurity FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :n", s=t.schema, n=table)
    policies = query(t, "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
                        "WHERE schemaname = :s AND tablename = :n ORDER BY policyname", s=t.schema, n=table)
    excludes = query(t, "SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c JOIN pg_class r "
                        "ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace "
                        "WHERE c.contype = 'x' AND n.nspname = :s AND r.relname = :n ORDER BY conname",
                     s=t.schema, n=table)
    return {"flags": [tuple(r) for r in flags], "policies": [tuple(r) for r in policies],
            "excludes": [tuple(r) for r in excludes]}


@contextmanager
def _least_privilege(t: Any) -> Iterator[str]:
    """The target connection logs in as a new role (not a superuser: row-level security applies to it) that may
    create tables in the test schema; the role and everything it owns go afterwards."""
    role = f"bastion_low_{uuid.uuid4().hex[:8]}"
    t.run(f'CREATE ROLE "{role}" LOGIN', f'GRANT USAGE, CREATE ON SCHEMA {t.q(t.schema)} TO "{role}"')
    superuser = t.connection.username
    t.connection.username = role
    t.connection.save()
    dispose_engine(t.connection)
    try:
        yield role
    finally:
        t.connection.username = superuser
        t.connection.save()
        dispose_engine(t.connection)
        t.run(f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')


def _rls_table(t: Any) -> None:
    """Rows 1 to 3; the policy only_positive hides row 3 (a = -1) from everyone it applies to."""
    r, odd = t.table("r"), t.q(HOSTILE[0])
    t.run(f"CREATE TABLE {r} (id serial PRIMARY KEY, a int, during int4range, "
          f"EXCLUDE USING gist (during WITH &&), CONSTRAINT {t.q('ex 2')} EXCLUDE USING btree (a WITH =) "
          "WHERE (a > 0))",
          f"ALTER TABLE {r} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {r} FORCE ROW LEVEL SECURITY",
          f"CREATE POLICY only_positive ON {r} USING (a > 0)",
          f"CREATE POLICY {odd} ON {r} AS RESTRICTIVE FOR INSERT TO postgres, PUBLIC WITH CHECK (a < 100)",
          f"CREATE POLICY {t.q('100%')} ON {r} FOR SELECT TO postgres USING (a::text NOT LIKE '9%%')",
          f"INSERT INTO {r} (a, during) VALUES (1, '[1,5)'), (7, NULL), (-1, '[5,9)')")  # noqa: S608 (quoted)


def test_T37_postgresql_row_level_security_and_exclusions_come_back(client, postgresql_target):  # noqa: F811
    """Row-level security (ENABLE, FORCE, permissive and restrictive policies, for roles) and EXCLUDE
    constraints are kept and put back: the exclusions before the rows, the policies after them, so every
    kept row comes back; the serial column's sequence is set before FORCE applies, past the row it hides."""
    t = postgresql_target
    _rls_table(t)
    before, kept_rows = _pg_security(t, "r"), rows(t, "r")
    assert before["flags"] == [(True, True)] and len(before["policies"]) == 3 and len(before["excludes"]) == 2
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "r")
    snapshot = TableSnapshot.objects.get()
    assert snapshot.row_count == 3
    assert [sql.split(" EXCLUDE ")[0].split(" ADD ")[1] for sql in snapshot.index_sql if " EXCLUDE " in sql] == [
        'CONSTRAINT "ex 2"', "CONSTRAINT r_during_excl"]
    assert [sql.split(" ON ")[0] for sql in snapshot.finish_sql if sql.startswith("CREATE POLICY")] == [
        'CREATE POLICY "100%"', "CREATE POLICY only_positive", 'CREATE POLICY "x""; DROP TABLE t; --"']
    body = restore_page(c, dropped)
    assert shown_sql(body) == [snapshot.create_sql, *snapshot.index_sql, *snapshot.finish_sql]
    assert "row-level security and its policies are part of them" in body
    with _least_privilege(t):  # restored by the new table's owner, to whom FORCE applies the policies
        response = c.post(restore_url(dropped))
        assert response.status_code == 302, problem_in(response.content.decode())
        assert _pg_security(t, "r") == before
        assert rows(t, "r") == kept_rows  # the row only_positive hides came back too
        t.run(f"INSERT INTO {t.table('r')} (a) VALUES (2)")  # noqa: S608
        assert rows(t, "r")[-1]["id"] == 4


def test_T37_postgresql_a_forced_policy_does_not_hide_rows_from_the_snapshot(client, postgresql_target):  # noqa: F811
    """The owner drops the table; FORCE ROW LEVEL SECURITY would show it only the rows its policies let
    through: the snapshot reads past them, so it keeps every row, and the table comes back as it was."""
    t = postgresql_target
    with _least_privilege(t) as role:
        _rls_table(t)
        t.run(f'ALTER TABLE {t.table("r")} OWNER TO "{role}"')
        before, kept_rows = _pg_security(t, "r"), rows(t, "r")
        c = signed(client, restorer(t))
        dropped = drop_table(c, t, "r")
        assert dropped.details["snapshot"]["rows"] == 3
        assert c.post(restore_url(dropped)).status_code == 302
        assert _pg_security(t, "r") == before and rows(t, "r") == kept_rows
