"""Restoring a dropped table from the snapshot its drop kept in the audit store (issue 5).

Tables are dropped through HTTP (the drop page) and restored through HTTP (the audit log's Restore page),
against real engines; what the database holds afterwards is read as an administrator. Rows: T37 (restore,
nothing half-done), T34 (a changed snapshot or event is refused), T33 (one event per drop and per restore),
T20 (grants), T31 (kept values of hidden columns never shown), T02 (hostile names).
"""

from __future__ import annotations

import math
import re
import uuid
import zlib
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection as metadata_db
from sqlalchemy import MetaData, Table, create_engine, insert, text
from sqlalchemy.engine import URL

from bastion.access.models import Action, ColumnMode
from bastion.access.roles import AUDITOR
from bastion.audit.chain import verify_chain
from bastion.audit.models import AuditEvent, Outcome, TableSnapshot
from bastion.connections import reflection
from bastion.schema_editor import drop, restore
from tests.engines import HOSTILE, mysql_target, postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import rows
from tests.test_schema_editor_drop import count, drop_url, make_user, problem_in, reauthenticated, signed, tables

pytestmark = pytest.mark.django_db

TABLE = HOSTILE[0]  # x"; DROP TABLE t; --
ODD_COLUMNS = HOSTILE[1:]  # a`b, Zürich ü 名前, it's
SECRET = "TOPSECRET-4242"


# --- helpers -------------------------------------------------------------------------------------------
def restorer(t: Any, username: str = "restorer", grants: list[tuple] | None = None) -> Any:
    """A user who may drop, then restore (audit_view through the Auditor role)."""
    default = [(Action.DROP, ""), (Action.VIEW, ""), (Action.ALTER, ""), (Action.INSERT, "")]
    user = make_user(t, username, default if grants is None else grants)
    user.groups.add(Group.objects.get(name=AUDITOR))
    return user


def restore_url(event: AuditEvent) -> str:
    return f"/audit/{event.pk}/restore/"


def admin_engine(t: Any) -> Any:
    return t.admin or create_engine(URL.create("sqlite", database=str(t.sqlite_path)))


def admin_table(t: Any, name: str) -> Table:
    engine = admin_engine(t)
    with engine.connect() as conn:
        # MySQL reflection doubles backticks in column names (see reflection._name): undone for inserts.
        found = Table(name, MetaData(), schema=t.schema, autoload_with=conn, listeners=[(
            "column_reflect", lambda _i, _t, info: info.update(name=info["name"].replace("``", "`")))])
    if engine is not t.admin:
        engine.dispose()
    return found


def query(t: Any, sql: str, **params: Any) -> list[Any]:
    engine = admin_engine(t)
    with engine.connect() as conn:
        found = list(conn.execute(text(sql), params))
    if engine is not t.admin:
        engine.dispose()
    return found


def drop_table(c: Any, t: Any, name: str) -> AuditEvent:
    response = c.post(drop_url(t, name), {"action": "drop", "name": name})
    assert response.status_code == 302, problem_in(response.content.decode())
    return AuditEvent.objects.filter(action=drop.TABLE_DROPPED).latest("seq")


def restored_events() -> Any:
    return AuditEvent.objects.filter(action=restore.TABLE_RESTORED)


def shape(t: Any, name: str) -> dict[str, Any]:
    """What reflection tells of a table: columns, indexes, keys."""
    reflection.invalidate(t.connection)
    return {"columns": reflection.columns(t.connection, t.schema, name),
            "indexes": reflection.indexes(t.connection, t.schema, name),
            "unique": reflection.unique_keys(t.connection, t.schema, name),
            "foreign_keys": reflection.foreign_keys(t.connection, t.schema, name)}


def pct(t: Any) -> str:
    """A percent sign in SQL that t.run sends through a driver that reads %."""
    return "%" if t.kind == "sqlite" else "%%"


def every_type_table(t: Any) -> None:
    q = t.q
    odd = ", ".join(f"{q(name)} VARCHAR(40)" for name in ODD_COLUMNS[:2])
    odd += f", {q(ODD_COLUMNS[2])} INTEGER NOT NULL DEFAULT 7"
    note = f"'it''s 100{pct(t)}'"
    ddl = {
        "sqlite": f"""CREATE TABLE {t.table(TABLE)} (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, big BIGINT,
            d DECIMAL(12, 2), f REAL, b BOOLEAN, s VARCHAR(20) UNIQUE, note TEXT DEFAULT {note}, da DATE, tm TIME,
            ts DATETIME, j JSON, bin BLOB, {odd}, CHECK (i IS NULL OR i > -1000))""",
        "postgresql": f"""CREATE TABLE {t.table(TABLE)} (id serial PRIMARY KEY, i integer, big bigint,
            d numeric(12, 2), f double precision, r real, b boolean, s varchar(20) UNIQUE, note text DEFAULT {note},
            da date, tm time, ts timestamp, tz timestamptz, j jsonb, js json, bin bytea, u uuid, arr integer[],
            iv interval, n serial, g integer GENERATED ALWAYS AS IDENTITY, {odd}, CHECK (i IS NULL OR i > -1000))""",
        "mysql": f"""CREATE TABLE {t.table(TABLE)} (id INT AUTO_INCREMENT PRIMARY KEY, i INT, big BIGINT,
            d DECIMAL(12, 2), f DOUBLE, b BOOLEAN, s VARCHAR(20) UNIQUE, note VARCHAR(40) DEFAULT {note}, da DATE,
            tm TIME(3), ts DATETIME(6), j JSON, bin LONGBLOB, {odd}, CHECK (i IS NULL OR i > -1000))""",
    }[t.kind]
    t.run(ddl, f"CREATE INDEX {q('ix ' + HOSTILE[0])} ON {t.table(TABLE)} (big, {q(ODD_COLUMNS[1])})")
    table = admin_table(t, TABLE)
    full = {"id": 5, "i": 42, "big": 2 ** 62, "d": Decimal("1234567890.12"), "f": 0.1, "b": True,
            "s": "héllo ✓", "note": "x", "da": date(2024, 2, 29), "tm": time(13, 14, 15, 123000),
            "ts": datetime(2024, 2, 29, 13, 14, 15, 123456),
            "j": '{"a": [1, 2.5, null], "é": "x"}' if t.kind == "mysql" else {"a": [1, 2.5, None], "é": "x"},
            "bin": bytes(range(256)), ODD_COLUMNS[0]: "back`tick", ODD_COLUMNS[1]: "名前", ODD_COLUMNS[2]: 9}
    if t.kind == "postgresql":
        full.update(r=1.5, tz=datetime(2024, 2, 29, 13, 14, 15, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                    js={"z": 1, "a": "kept in order"}, u=uuid.UUID("12345678-1234-5678-1234-567812345678"),
                    arr=[1, None, 3], iv=timedelta(days=3, seconds=7, microseconds=5), f=math.inf)
    empty = {"id": 9, ODD_COLUMNS[2]: 0}  # every other column NULL
    second = {**full, "id": 7, "s": "second", "f": -0.0 if t.kind != "mysql" else 2.5, "b": False,
              "bin": b"", "note": None}
    t.execute(insert(table), invalidate=False)  # an all-default row: id 1 (or 1 + what AUTOINCREMENT kept)
    t.execute(insert(table).values([{name: row.get(name) for name in full} for row in (full, empty, second)]))
    if t.kind == "postgresql":
        t.run(f"INSERT INTO {t.table(TABLE)} (id, f, {q(ODD_COLUMNS[2])}) VALUES (11, 'NaN', 1)")  # noqa: S608 (quoted by t.q)


def comparable(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with NaN spelled out (NaN is not equal to itself)."""
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in found]


def restore_page(c: Any, event: AuditEvent) -> str:
    page = c.get(restore_url(event))
    assert page.status_code == 200
    return page.content.decode()


def shown_sql(body: str) -> list[str]:
    return [unescape(sql) for sql in re.findall(r'<pre class="ddl">(.*?)</pre>', body, re.S)]


# --- drop, then restore: every type, every engine --------------------------------------------------------
def test_T37_T33_T02_drop_then_restore_gives_back_the_same_table_and_rows(client, target):  # noqa: F811
    t = target
    every_type_table(t)
    before_rows, before_shape = rows(t, TABLE), shape(t, TABLE)
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, TABLE)
    assert TABLE not in tables(t)
    said = dropped.details["snapshot"]
    assert said["rows_kept"] and said["rows"] == len(before_rows) and said["bytes"] > 0
    snapshot = TableSnapshot.objects.get(event=dropped)
    assert snapshot.rows_kept and snapshot.row_count == len(before_rows) and snapshot.dialect == t.kind

    log = c.get("/audit/").content.decode()
    assert f'href="{restore_url(dropped)}"' in log and f"rows kept: {len(before_rows)}" in log
    body = restore_page(c, dropped)
    statements = shown_sql(body)
    assert statements[0] == snapshot.create_sql and statements[0].startswith("CREATE TABLE")
    assert any(s.startswith("CREATE INDEX") for s in statements)
    assert f"then {len(before_rows)} rows inserted" in unescape(body)

    response = c.post(restore_url(dropped))
    assert response.status_code == 302, problem_in(response.content.decode())
    assert response["Location"].startswith(f"/db/{t.connection.pk}/table/?")
    landed = c.get(response["Location"])
    assert landed.status_code == 200 and f"restored with {len(before_rows)} rows" in unescape(landed.content.decode())
    assert TABLE in tables(t)
    assert comparable(rows(t, TABLE)) == comparable(before_rows)
    assert shape(t, TABLE) == before_shape

    # New rows get fresh numbers: past every restored one.
    t.run(f"INSERT INTO {t.table(TABLE)} ({t.q(ODD_COLUMNS[2])}) VALUES (1)")  # noqa: S608 (quoted by t.q)
    highest = max(r["id"] for r in before_rows)
    newest = rows(t, TABLE)[-1]
    assert newest["id"] > highest
    if t.kind == "postgresql":
        assert newest["n"] > max(r["n"] for r in before_rows)
        assert newest["g"] > max(r["g"] for r in before_rows)
        always = query(t, "SELECT identity_generation FROM information_schema.columns WHERE table_schema = :s "
                          "AND table_name = :tab AND column_name = 'g'", s=t.schema, tab=TABLE)
        assert always == [("ALWAYS",)]

    # One event for the drop, one for the restore, naming the drop; the chain still verifies.
    assert AuditEvent.objects.filter(action=drop.TABLE_DROPPED).count() == 1
    [event] = restored_events()
    assert event.outcome == Outcome.SUCCESS and event.details["restored_from"] == dropped.pk
    assert event.details["rows"] == len(before_rows) and event.after["ddl"][0] == snapshot.create_sql
    assert verify_chain(AuditEvent.objects.order_by("seq")).ok


def test_T37_a_table_dropped_again_after_a_restore_restores_again(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY, label TEXT)", "INSERT INTO people VALUES (1, 'a'), (2, 'b')")
    c = signed(client, restorer(t))
    first = drop_table(c, t, "people")
    assert c.post(restore_url(first)).status_code == 302
    second = drop_table(c, t, "people")
    assert c.post(restore_url(second)).status_code == 302
    assert count(t, "people") == 2 and restored_events().count() == 2


def test_T37_generated_columns_are_recreated_not_filled(client, target):  # noqa: F811
    t = target
    generated = {"sqlite": "INTEGER GENERATED ALWAYS AS (qty * 2) STORED",
                 "postgresql": "integer GENERATED ALWAYS AS (qty * 2) STORED",
                 "mysql": "INTEGER AS (qty * 2) PERSISTENT"}[t.kind]
    t.run(f"CREATE TABLE {t.table('stock')} (id INTEGER PRIMARY KEY, qty INTEGER, twice {generated})",
          f"INSERT INTO {t.table('stock')} (id, qty) VALUES (1, 2), (2, NULL)")  # noqa: S608
    before = rows(t, "stock")
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "stock")
    assert [col["name"] for col in TableSnapshot.objects.get().columns] == ["id", "qty"]
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, "stock") == before == [{"id": 1, "qty": 2, "twice": 4}, {"id": 2, "qty": None, "twice": None}]


def test_T37_postgresql_enums_and_a_shared_sequence(client, postgresql_target):  # noqa: F811
    t = postgresql_target
    schema = t.q(t.schema)
    t.run(f"CREATE TYPE {schema}.mood AS ENUM ('happy', 'sad')", f"CREATE SEQUENCE {schema}.shared START 100",
          f"CREATE TABLE {t.table('feel')} (id integer PRIMARY KEY DEFAULT nextval('{t.schema}.shared'), "
          f"mood {schema}.mood NOT NULL, moods {schema}.mood[])",
          f"INSERT INTO {t.table('feel')} (mood, moods) VALUES ('sad', ARRAY['happy', 'sad']::{schema}.mood[])")  # noqa: S608 (quoted by t.q)
    before = rows(t, "feel")
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "feel")
    assert "SERIAL" not in TableSnapshot.objects.get().create_sql  # the sequence is not the table's: it stays
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, "feel") == before
    t.run(f"INSERT INTO {t.table('feel')} (mood) VALUES ('happy')")  # noqa: S608 (quoted by t.q)
    assert [r["id"] for r in rows(t, "feel")] == [100, 101]


# --- what is not kept --------------------------------------------------------------------------------------
@pytest.mark.parametrize("limit", ["rows", "bytes"])
def test_T37_a_table_over_the_limits_keeps_its_definition_only(client, target, settings, limit):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('big')} (id INTEGER PRIMARY KEY, v VARCHAR(200))")
    t.execute(insert(admin_table(t, "big")).values([{"id": n, "v": "v" * 150} for n in range(1, 6)]))
    if limit == "rows":
        settings.DROP_SNAPSHOT_MAX_ROWS, reason = 4, "larger than 4 rows"
    else:
        settings.DROP_SNAPSHOT_MAX_BYTES, reason = 500, "larger than 500 bytes"
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "big")
    assert "big" not in tables(t)  # the drop happens all the same
    assert dropped.details["snapshot"] == {"definition_kept": True, "rows_kept": False, "reason": reason,
                                           "definition_sha256": TableSnapshot.objects.get().definition_sha256}
    snapshot = TableSnapshot.objects.get()
    assert not snapshot.rows_kept and snapshot.data is None and snapshot.row_count is None
    assert f"rows not kept: {reason}" in c.get("/audit/").content.decode()
    assert "the table comes back empty" in restore_page(c, dropped)
    assert c.post(restore_url(dropped)).status_code == 302
    assert "big" in tables(t) and count(t, "big") == 0
    assert restored_events().get().details["rows"] == 0


def test_T37_views_and_emptied_tables_keep_no_snapshot(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY)", "INSERT INTO people VALUES (1)",
          "CREATE VIEW v AS SELECT id FROM people")
    c = signed(client, restorer(t))
    assert c.post(drop_url(t, "people"), {"action": "empty", "name": "people"}).status_code == 302
    view = drop_table(c, t, "v")
    assert not TableSnapshot.objects.exists() and "snapshot" not in view.details
    assert c.get(restore_url(view)).status_code == 404
    assert "Restore…" not in c.get("/audit/").content.decode()


# --- refusals ------------------------------------------------------------------------------------------
def tamper(sql: str, *params: Any) -> None:
    """What an attacker with write access to the metadata database would do (triggers first)."""
    with metadata_db.cursor() as cursor:
        if metadata_db.vendor == "sqlite":
            cursor.execute("DROP TRIGGER audit_snapshot_no_update")
        else:
            cursor.execute("DROP TRIGGER audit_snapshot_no_change ON audit_tablesnapshot")
        cursor.execute(sql, list(params))


def forged_rows(rows_: list[list[Any]]) -> bytes:
    import json

    return zlib.compress(json.dumps({"format": 1, "rows": rows_}, separators=(",", ":")).encode())


@pytest.mark.parametrize("what", ["rows", "statement", "event"])
def test_T34_T33_a_changed_snapshot_or_event_is_refused_and_audited(client, target, what):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('people')} (id INTEGER PRIMARY KEY, label VARCHAR(20))",
          f"INSERT INTO {t.table('people')} VALUES (1, 'one')")  # noqa: S608 (test names, quoted by t.q)
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "people")
    snapshot = TableSnapshot.objects.get()
    if what == "rows":  # new rows, and the sha256 column made to fit them: only the chained event still knows
        import hashlib

        data = forged_rows([[1, "two"]])  # as long as the kept [[1, "one"]]: sizes and count still fit
        tamper("UPDATE audit_tablesnapshot SET data = %s, sha256 = %s WHERE id = %s",
               data, hashlib.sha256(data).hexdigest(), snapshot.pk)
    elif what == "statement":
        evil = snapshot.create_sql.replace("label", "label VARCHAR(20), evil")
        tamper("UPDATE audit_tablesnapshot SET create_sql = %s WHERE id = %s", evil, snapshot.pk)
    else:  # the event points the restore at another table: only the event's HMAC tells
        from tests.test_audit import drop_append_only_triggers

        drop_append_only_triggers()
        AuditEvent.objects.filter(pk=dropped.pk).update(details={**dropped.details, "table": "elsewhere"})
    response = c.post(restore_url(dropped))
    assert response.status_code == 409
    assert problem_in(response.content.decode()).strip() == restore.TAMPERED
    assert not {"people", "elsewhere"} & set(tables(t))
    [event] = restored_events()
    assert event.outcome == Outcome.FAILURE and event.details["error"] == restore.TAMPERED


def test_T37_a_name_taken_since_is_refused_and_nothing_changes(client, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('people')} (id INTEGER PRIMARY KEY, label VARCHAR(20))",
          f"INSERT INTO {t.table('people')} VALUES (1, 'one')")  # noqa: S608
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "people")
    t.run(f"CREATE TABLE {t.table('people')} (other INTEGER)", f"INSERT INTO {t.table('people')} VALUES (42)")  # noqa: S608 (quoted by t.q)
    assert "already exists" in problem_in(restore_page(c, dropped))
    assert 'class="restore-confirm"' not in restore_page(c, dropped)
    response = c.post(restore_url(dropped))
    assert response.status_code == 409 and "already exists" in problem_in(response.content.decode())
    assert rows(t, "people", order="other") == [{"other": 42}]
    assert not restored_events().exists()


def test_T37_rows_the_database_refuses_leave_nothing_behind(client, target):  # noqa: F811
    """The kept rows refer to rows deleted since: the insert fails, and (MySQL too) no table is left."""
    t = target
    t.run(f"CREATE TABLE {t.table('owners')} (id INTEGER PRIMARY KEY)",
          f"CREATE TABLE {t.table('pets')} (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, "
          f"CONSTRAINT pets_owner_fk FOREIGN KEY (owner) REFERENCES {t.table('owners')} (id))",
          f"INSERT INTO {t.table('owners')} VALUES (1)", f"INSERT INTO {t.table('pets')} VALUES (1, 1)")  # noqa: S608 (quoted by t.q)
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "pets")
    t.run(f"DELETE FROM {t.table('owners')}")  # noqa: S608
    response = c.post(restore_url(dropped))
    assert response.status_code == 409
    assert "refused the kept rows" in problem_in(response.content.decode())
    assert "pets" not in tables(t)
    [event] = restored_events()
    assert event.outcome == Outcome.FAILURE
    t.run(f"INSERT INTO {t.table('owners')} VALUES (1)")  # noqa: S608 (the owner is back)
    assert c.post(restore_url(dropped)).status_code == 302
    assert rows(t, "pets") == [{"id": 1, "owner": 1}]
    assert [fk["referred_table"] for fk in reflection.foreign_keys(t.connection, t.schema, "pets")] == ["owners"]


def test_T37_a_deleted_connection_is_told_plainly(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY)")
    c = signed(client, restorer(t))
    dropped = drop_table(c, t, "people")
    t.connection.delete()
    assert restore.GONE in problem_in(restore_page(c, dropped))
    response = c.post(restore_url(dropped))
    assert response.status_code == 409 and restore.GONE in problem_in(response.content.decode())
    assert not restored_events().exists()


# --- permissions and re-authentication ----------------------------------------------------------------
def test_T20_restoring_needs_alter_and_insert_besides_the_audit_view(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY, label TEXT)", "INSERT INTO people VALUES (1, 'a')")
    dropped = drop_table(signed(client, restorer(t)), t, "people")
    client.logout()
    for name, grants in (("no_alter", [(Action.VIEW, ""), (Action.INSERT, "")]),
                         ("no_insert", [(Action.VIEW, ""), (Action.ALTER, "")]),
                         ("other_table", [(Action.VIEW, ""), (Action.ALTER, ""), (Action.INSERT, "other")]),
                         ("hidden_col", [(Action.VIEW, ""), (Action.ALTER, ""), (Action.INSERT, ""),
                                         (Action.VIEW, "people", "label", ColumnMode.HIDDEN)])):
        c = signed(client, restorer(t, name, grants))
        body = restore_page(c, dropped)  # the audit view alone shows the page, without the button
        assert 'class="restore-confirm"' not in body and restore.NEEDS in unescape(body)
        assert c.post(restore_url(dropped)).status_code == 403
        assert "people" not in tables(t)
        client.logout()
    no_audit = make_user(t, "no_audit", [(Action.VIEW, ""), (Action.ALTER, ""), (Action.INSERT, "")])
    c = signed(client, no_audit)
    assert c.get(restore_url(dropped)).status_code == 403
    assert c.post(restore_url(dropped)).status_code == 403
    assert "Restore…" not in c.get("/audit/").content.decode()
    assert "people" not in tables(t) and not restored_events().exists()


def test_T20_a_connection_the_user_cannot_see_is_refused(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY)")
    dropped = drop_table(signed(client, restorer(t)), t, "people")
    client.logout()
    auditor = make_user(t, "auditor", [])
    auditor.groups.add(Group.objects.get(name=AUDITOR))
    c = signed(client, auditor)
    assert restore.NOT_VISIBLE in unescape(restore_page(c, dropped))
    response = c.post(restore_url(dropped))
    assert response.status_code == 403 and restore.NOT_VISIBLE in unescape(response.content.decode())
    assert "people" not in tables(t)


def test_T20_an_unknown_event_or_one_without_a_snapshot_is_404(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    c = signed(client, restorer(t))
    other = AuditEvent.objects.latest("seq") if AuditEvent.objects.exists() else None
    assert c.get("/audit/999999/restore/").status_code == 404
    if other is not None:
        assert c.get(restore_url(other)).status_code == 404


def test_T37_without_recent_reauthentication_redirects_then_restores(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY, label TEXT)", "INSERT INTO people VALUES (1, 'a')")
    user = restorer(t)
    c = signed(client, user)
    dropped = drop_table(c, t, "people")
    session = c.session
    session["account_authentication_methods"][0]["at"] -= 3600
    session.save()
    response = c.post(restore_url(dropped))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/reauthenticate/?next=%2Faudit%2F{dropped.pk}%2Frestore%2F"
    assert "people" not in tables(t) and not restored_events().exists()
    reauthenticated(c, user)
    assert c.post(restore_url(dropped)).status_code == 302
    assert count(t, "people") == 1 and restored_events().count() == 1


# --- hidden columns ----------------------------------------------------------------------------------------
def test_T31_kept_values_of_hidden_columns_never_reach_the_audit_pages(client, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('people')} (id INTEGER PRIMARY KEY, name VARCHAR(20), "
          f"secret_col VARCHAR(40) DEFAULT 'public default')",
          f"INSERT INTO {t.table('people')} VALUES (1, 'ann', '{SECRET}'), (2, 'bob', '{SECRET}-2')")  # noqa: S608
    user = restorer(t, "hider", [(Action.DROP, ""), (Action.VIEW, ""), (Action.ALTER, ""), (Action.INSERT, ""),
                                 (Action.VIEW, "people", "secret_col", ColumnMode.HIDDEN)])
    c = signed(client, user)
    dropped = drop_table(c, t, "people")
    assert TableSnapshot.objects.get().rows_kept  # kept, every column: a restore needs them
    assert SECRET not in str(dropped.details) + str(dropped.before) + str(dropped.after)
    assert SECRET not in c.get("/audit/").content.decode()
    assert SECRET not in c.get(restore_url(dropped)).content.decode()
    assert SECRET not in c.get("/audit/?action=schema").content.decode()
