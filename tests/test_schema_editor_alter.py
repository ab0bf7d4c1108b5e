"""Altering a table through the structure page (issue 5): every change, on every engine, with data kept.

Every test goes through HTTP: a POST previews the exact statements, a second POST
with the preview's token runs them; the database is then read directly. Rows: T02
(hostile names quoted by the dialect), T20 (alter grant, hidden columns not offered
nor accepted), T33 (one audit event per change, with the DDL and before/after).
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, inspect, text

from bastion.access.models import Action, ColumnMode
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections.engines import get_engine
from bastion.schema_editor import alter, alter_checks, live_table
from tests.engines import HOSTILE, postgresql_target, sqlite_target, target  # noqa: F401
from tests.test_schema_editor_drop import make_user, problem_in, tables

pytestmark = pytest.mark.django_db


def structure_url(t: Any, name: str) -> str:
    query = {**({"s": t.schema} if t.schema else {}), "t": name}
    return f"/db/{t.connection.pk}/schema/alter-table/?{urlencode(query)}"


def statements(body: str) -> list[str]:
    return [unescape(sql) for sql in re.findall(r'<pre class="ddl">(.*?)</pre>', body, re.S)]


def token_in(body: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', body)
    assert found, problem_in(body)
    return unescape(found.group(1))


def preview(c: Any, t: Any, table: str, op: str, fields: dict[str, str]) -> Any:
    data = {"op": op, "preview": "1", **{f"{op}-{key}": value for key, value in fields.items()}}
    return c.post(structure_url(t, table), data)


def change(c: Any, t: Any, table: str, op: str, fields: dict[str, str]) -> Any:
    """Preview ``op`` with ``fields``, then confirm exactly that preview; the confirming response."""
    shown = preview(c, t, table, op, fields)
    assert shown.status_code == 200, problem_in(shown.content.decode())
    data = {"op": op, "confirm": "1", "token": token_in(shown.content.decode()),
            **{f"{op}-{key}": value for key, value in fields.items()}}
    return c.post(structure_url(t, table), data)


def engine_of(t: Any) -> Any:
    return t.admin or create_engine(f"sqlite:///{t.sqlite_path}")


def rows(t: Any, table: str, columns: list[str]) -> list[tuple]:
    listed = ", ".join(t.q(c) for c in columns)
    with engine_of(t).connect() as conn:
        sql = f"SELECT {listed} FROM {t.table(table)} ORDER BY {t.q(columns[0])}"  # noqa: S608 (quoted by t.q)
        return [tuple(r) for r in conn.execute(text(sql))]


def columns_of(t: Any, table: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in inspect(engine_of(t)).get_columns(table, schema=t.schema)}


def alterer(t: Any, username: str = "alterer") -> Any:
    return make_user(t, username, [(Action.ALTER, ""), (Action.VIEW, "")])


def signed_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def things(t: Any, name: str = "things") -> None:
    t.run(f"CREATE TABLE {t.table('parents')} (id INTEGER PRIMARY KEY)",
          f"INSERT INTO {t.table('parents')} (id) VALUES (1), (2)",  # noqa: S608 (test names, quoted by t.q)
          f"CREATE TABLE {t.table(name)} (id INTEGER PRIMARY KEY, label VARCHAR(20) NOT NULL, amount INTEGER)",
          f"INSERT INTO {t.table(name)} (id, label, amount) VALUES (1, 'one', 10), (2, 'two', NULL), "  # noqa: S608
          f"(3, 'it''s', 30)")


def events() -> Any:
    return AuditEvent.objects.filter(action=alter.TABLE_ALTERED)


def ok(response: Any) -> None:
    assert response.status_code == 302, problem_in(response.content.decode())


# --- every change on every engine, data kept ----------------------------------------------------------
def test_T02_T33_every_kind_of_change_keeps_the_rows(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, alterer(t))
    page = c.get(structure_url(t, "things"))
    assert page.status_code == 200 and "Structure of" in page.content.decode()

    weird = HOSTILE[0]  # x"; DROP TABLE t; --
    ok(change(c, t, "things", "add_column", {"name": "note", "type": "varchar", "size": "30", "nullable": "on",
                                              "default": "n/a"}))
    assert rows(t, "things", ["id", "note"]) == [(1, "n/a"), (2, "n/a"), (3, "n/a")]

    ok(change(c, t, "things", "rename_column", {"column": "label", "new_name": weird}))
    assert rows(t, "things", ["id", weird]) == [(1, "one"), (2, "two"), (3, "it's")]

    ok(change(c, t, "things", "alter_column", {"column": "amount", "type": "bigint", "nullable": "keep",
                                                "default_mode": "set", "default": "7"}))
    assert rows(t, "things", ["id", "amount"]) == [(1, 10), (2, None), (3, 30)]
    assert columns_of(t, "things")["amount"]["default"] is not None

    ok(change(c, t, "things", "alter_column", {"column": "note", "nullable": "forbid", "default_mode": "none"}))
    assert columns_of(t, "things")["note"]["nullable"] is False
    assert rows(t, "things", ["id", "note"]) == [(1, "n/a"), (2, "n/a"), (3, "n/a")]

    ok(change(c, t, "things", "add_index", {"name": "", "column_1": weird, "column_2": "amount", "unique": "on"}))
    [index] = inspect(engine_of(t)).get_indexes("things", schema=t.schema)
    assert index["column_names"] == [weird, "amount"] and index["unique"]
    ok(change(c, t, "things", "drop_index", {"index": index["name"]}))
    assert inspect(engine_of(t)).get_indexes("things", schema=t.schema) == []

    ok(change(c, t, "things", "add_column", {"name": "parent", "type": "integer", "nullable": "on"}))
    ok(change(c, t, "things", "add_foreign_key", {"column": "parent", "referred_table": "parents",
                                                   "on_delete": "SET NULL"}))
    [fk] = inspect(engine_of(t)).get_foreign_keys("things", schema=t.schema)
    assert fk["constrained_columns"] == ["parent"] and fk["referred_table"] == "parents"
    number = "1"
    ok(change(c, t, "things", "drop_foreign_key", {"key": number}))
    assert inspect(engine_of(t)).get_foreign_keys("things", schema=t.schema) == []

    ok(change(c, t, "things", "drop_column", {"column": "note"}))
    assert "note" not in columns_of(t, "things")
    assert rows(t, "things", ["id", weird, "amount"]) == [(1, "one", 10), (2, "two", None), (3, "it's", 30)]

    new_name = HOSTILE[1] if t.kind != "postgresql" else HOSTILE[2]
    response = change(c, t, "things", "rename_table", {"new_name": new_name})
    ok(response)
    assert new_name in tables(t) and "things" not in tables(t)
    assert response["Location"] == structure_url(t, new_name)
    assert rows(t, new_name, ["id", weird]) == [(1, "one"), (2, "two"), (3, "it's")]

    recorded = list(events().order_by("id"))
    assert len(recorded) == 11 and all(e.outcome == Outcome.SUCCESS for e in recorded)
    renamed = recorded[1]
    assert renamed.details["change"] == "RenameColumn" and renamed.after["ddl"]
    assert [col["name"] for col in renamed.before["columns"]] == ["id", "label", "amount", "note"]
    assert [col["name"] for col in renamed.after["columns"]] == ["id", weird, "amount", "note"]


def test_T02_preview_shows_the_exact_statement_and_changes_nothing(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, alterer(t))
    response = preview(c, t, "things", "rename_column", {"column": "label", "new_name": HOSTILE[0]})
    assert response.status_code == 200
    [sql] = statements(response.content.decode())
    assert t.q(HOSTILE[0]) in sql and "label" in sql
    assert "label" in columns_of(t, "things")
    assert not events().exists()


def test_T33_a_change_runs_only_from_its_own_preview(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, alterer(t))
    shown = preview(c, t, "things", "drop_column", {"column": "amount"})
    token = token_in(shown.content.decode())
    # The token of one change does not run another one.
    response = c.post(structure_url(t, "things"), {"op": "drop_column", "confirm": "1", "token": token,
                                                    "drop_column-column": "label"})
    assert response.status_code == 409
    assert set(columns_of(t, "things")) == {"id", "label", "amount"}
    assert not events().exists()
    # A table changed since the preview runs only if the statements are still the ones shown: SQLite's rebuild
    # names every column, so a new column makes it another statement; elsewhere DROP COLUMN is the same.
    t.run(f"ALTER TABLE {t.table('things')} ADD COLUMN extra INTEGER")
    response = c.post(structure_url(t, "things"), {"op": "drop_column", "confirm": "1", "token": token,
                                                    "drop_column-column": "amount"})
    if t.kind == "sqlite":
        assert response.status_code == 409
        assert "amount" in columns_of(t, "things")
        assert not events().exists()
    else:
        ok(response)
        assert "amount" not in columns_of(t, "things")


def test_a_conversion_that_fails_changes_nothing_and_is_audited(client, target):  # noqa: F811
    t = target
    if t.kind == "sqlite":
        pytest.skip("SQLite keeps any value in any column: the conversion cannot fail")
    things(t)
    c = signed_in(client, alterer(t))
    response = change(c, t, "things", "alter_column", {"column": "label", "type": "integer", "nullable": "keep",
                                                        "default_mode": "keep"})
    assert response.status_code == 400
    assert "refused" in problem_in(response.content.decode())
    assert rows(t, "things", ["id", "label"]) == [(1, "one"), (2, "two"), (3, "it's")]
    [event] = events()
    assert event.outcome == Outcome.FAILURE


# --- names ------------------------------------------------------------------------------------------------
def test_T02_names_the_engine_would_refuse_or_cut_are_refused_first(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, alterer(t))
    limit = {"postgresql": 64, "mysql": 65, "sqlite": None}[t.kind]
    if limit:
        response = preview(c, t, "things", "rename_column", {"column": "label", "new_name": "x" * limit})
        assert response.status_code == 400 and "at most" in problem_in(response.content.decode())
        fits = "y" * (limit - 1)
        ok(change(c, t, "things", "rename_column", {"column": "label", "new_name": fits}))
        assert fits in columns_of(t, "things")
    response = preview(c, t, "things", "rename_column", {"column": "amount", "new_name": "ID"})
    assert response.status_code == (200 if t.kind == "postgresql" else 400)  # PostgreSQL: quoted names are exact
    response = preview(c, t, "things", "rename_table", {"new_name": "parents"})
    assert response.status_code == 400 and "already exists" in problem_in(response.content.decode())


# --- grants --------------------------------------------------------------------------------------------
def test_T20_alter_needs_the_alter_grant(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, make_user(t, "viewer", [(Action.VIEW, "")]))
    assert c.get(structure_url(t, "things")).status_code == 403
    response = c.post(structure_url(t, "things"), {"op": "drop_column", "preview": "1",
                                                    "drop_column-column": "amount"})
    assert response.status_code == 403
    assert "amount" in columns_of(t, "things")


def test_T20_T31_hidden_columns_are_not_offered_nor_accepted(client, target):  # noqa: F811
    t = target
    things(t)
    user = make_user(t, "partial", [(Action.ALTER, ""), (Action.VIEW, ""),
                                    (Action.VIEW, "things", "amount", ColumnMode.HIDDEN)])
    c = signed_in(client, user)
    body = c.get(structure_url(t, "things")).content.decode()
    assert 'value="amount"' not in body and ">amount<" not in body
    assert "1 column your role does not show in clear" in body
    for op, fields in (("drop_column", {"column": "amount"}),
                       ("rename_column", {"column": "amount", "new_name": "spent"})):
        response = preview(c, t, "things", op, fields)
        assert response.status_code == 400
    # A new column named like the hidden one is refused without saying what is there.
    response = preview(c, t, "things", "add_column", {"name": "amount", "type": "integer", "nullable": "on"})
    assert response.status_code == 400
    assert problem_in(response.content.decode()).strip() == alter_checks.NAME_TAKEN
    assert set(columns_of(t, "things")) == {"id", "label", "amount"}


# --- SQLite's rebuilds ----------------------------------------------------------------------------------
def test_sqlite_rebuild_keeps_key_actions_autoincrement_and_indexes(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE parents (id INTEGER PRIMARY KEY)", "INSERT INTO parents VALUES (1)",
          "CREATE TABLE kids (id INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER REFERENCES parents(id) "
          "ON DELETE CASCADE, label TEXT, note TEXT)",
          "CREATE INDEX kids_label ON kids (label)",
          "INSERT INTO kids (parent, label, note) VALUES (1, 'a', 'x'), (1, 'b', 'y')")
    c = signed_in(client, alterer(t))
    ok(change(c, t, "kids", "drop_column", {"column": "note"}))
    with engine_of(t).connect() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'kids'")).scalar_one()
        assert "AUTOINCREMENT" in sql and "ON DELETE CASCADE" in sql
        assert conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'kids'")
                            ).scalars().all() == ["kids_label"]
    assert rows(t, "kids", ["id", "parent", "label"]) == [(1, 1, "a"), (2, 1, "b")]


def test_sqlite_rebuild_keeps_referring_rows_and_refuses_what_it_would_lose(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE parents (id INTEGER PRIMARY KEY, label TEXT COLLATE NOCASE, n INTEGER)",
          "INSERT INTO parents VALUES (1, 'a', 1)",
          "CREATE TABLE kids (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents(id) ON DELETE CASCADE)",
          "INSERT INTO kids VALUES (1, 1), (2, 1)",
          "CREATE TABLE plain (id INTEGER PRIMARY KEY, n INTEGER, note TEXT)",
          "CREATE TABLE plain_kids (id INTEGER PRIMARY KEY, p INTEGER REFERENCES plain(id) ON DELETE CASCADE)",
          "INSERT INTO plain VALUES (1, 1, 'x')", "INSERT INTO plain_kids VALUES (1, 1)")
    c = signed_in(client, alterer(t))
    # A table other tables refer to is rebuilt with foreign keys off: their rows stay.
    ok(change(c, t, "plain", "drop_column", {"column": "note"}))
    assert rows(t, "plain_kids", ["id", "p"]) == [(1, 1)] and rows(t, "plain", ["id", "n"]) == [(1, 1)]
    with engine_of(t).connect() as conn:
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
    # A definition the rebuild cannot carry over (COLLATE) is refused.
    response = preview(c, t, "parents", "drop_column", {"column": "n"})
    assert response.status_code == 400 and "NOCASE" in problem_in(response.content.decode())
    # Changes SQLite makes in place still work.
    ok(change(c, t, "parents", "rename_column", {"column": "n", "new_name": "number"}))
    assert rows(t, "parents", ["id", "label", "number"]) == [(1, "a", 1)]
    assert rows(t, "kids", ["id", "parent"]) == [(1, 1), (2, 1)]


def test_sqlite_rebuild_that_would_break_a_key_changes_nothing(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE parents (id INTEGER PRIMARY KEY)", "INSERT INTO parents VALUES (1)",
          "CREATE TABLE kids (id INTEGER PRIMARY KEY, parent INTEGER)", "INSERT INTO kids VALUES (1, 1), (2, 7)")
    c = signed_in(client, alterer(t))
    response = change(c, t, "kids", "add_foreign_key", {"column": "parent", "referred_table": "parents"})
    assert response.status_code == 400 and problem_in(response.content.decode()).strip() == live_table.KEYS_BROKEN
    assert rows(t, "kids", ["id", "parent"]) == [(1, 1), (2, 7)]
    assert inspect(engine_of(t)).get_foreign_keys("kids") == []
    assert not events().exists()
    with get_engine(t.connection).connect() as conn:  # and the next connection Bastion opens enforces keys again
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


# --- the two-person rule for dropping a column ---------------------------------------------------------
def test_T37_dropping_a_column_waits_for_a_second_person(client, target):  # noqa: F811
    from bastion.access.roles import set_two_person_rule
    from bastion.schema_editor import approvals
    from bastion.schema_editor.models import ApprovalRequest, ApprovalStatus
    from tests.conftest import HttpsClient

    t = target
    things(t)
    alice = alterer(t, "alice")
    set_two_person_rule(None, None, alice.groups.get(), (approvals.DROP_COLUMN,))
    c = signed_in(client, alice)
    assert "Ask for approval" in preview(c, t, "things", "drop_column", {"column": "amount"}).content.decode()
    response = change(c, t, "things", "drop_column", {"column": "amount"})
    assert response.status_code == 302 and response["Location"] == "/approvals/"
    assert "amount" in columns_of(t, "things") and not events().exists()
    approval = ApprovalRequest.objects.get(requester=alice, operation=approvals.DROP_COLUMN)
    assert approval.column == "amount" and approval.statements

    # The requester cannot approve it; another holder of alter can, after a recent password.
    from tests.test_schema_editor_drop import signed
    assert signed(c, alice).post(f"/approvals/{approval.pk}/", {"decision": "approve"}).status_code in (302, 403)
    assert "amount" in columns_of(t, "things")
    bob = signed(HttpsClient(), alterer(t, "bob"))
    response = bob.post(f"/approvals/{approval.pk}/", {"decision": "approve"})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXECUTED, approval.message
    assert "amount" not in columns_of(t, "things")
    assert rows(t, "things", ["id", "label"]) == [(1, "one"), (2, "two"), (3, "it's")]
    [event] = events()
    assert event.actor == "alice" and event.details["change"] == "DropColumn"
    assert event.after["ddl"] == list(approval.statements)


def test_T02_hostile_names_through_every_kind_of_change(client, target):  # noqa: F811
    t = target
    things(t)
    c = signed_in(client, alterer(t))
    names = ["[x]", "a`b", 'x"; DROP TABLE t; --', "🦊 fox", "select"]
    for number, name in enumerate(names):
        fields = {"name": name, "type": "integer", "nullable": "on", "default": str(number)}
        if t.kind == "mysql" and name.startswith("🦊"):
            response = preview(c, t, "things", "add_column", fields)
            assert response.status_code == 400  # refused before anything ran: 4-byte characters
            assert "Basic Multilingual Plane" in problem_in(response.content.decode())
            continue
        ok(change(c, t, "things", "add_column", fields))
        if t.kind == "mysql" and "`" in name:  # SQLAlchemy misreads it: nothing more is changed on this table
            response = preview(c, t, "things", "add_index", {"name": f"ix {name}", "column_1": name})
            assert response.status_code == 400 and "backtick" in problem_in(response.content.decode())
            t.run(f"ALTER TABLE {t.table('things')} DROP COLUMN {t.q(name)}")
            continue
        ok(change(c, t, "things", "add_index", {"name": f"ix {name}", "column_1": name}))
        ok(change(c, t, "things", "rename_column", {"column": name, "new_name": f"{name} 2"}))
        assert rows(t, "things", ["id", f"{name} 2"]) == [(1, number), (2, number), (3, number)]
    ok(change(c, t, "things", "rename_table", {"new_name": "[x]"}))
    ok(change(c, t, "[x]", "drop_column", {"column": "[x] 2"}))
    assert rows(t, "[x]", ["id", "label"]) == [(1, "one"), (2, "two"), (3, "it's")]
    assert "things" not in tables(t)


def test_a_change_gives_up_when_another_session_holds_the_table(client, postgresql_target):  # noqa: F811
    """PostgreSQL: an ALTER waiting for its lock would make every reader of the table wait behind it."""
    t = postgresql_target
    things(t)
    c = signed_in(client, alterer(t))
    shown = preview(c, t, "things", "add_column", {"name": "note", "type": "text", "nullable": "on"})
    with t.admin.connect() as other:
        other.execute(text(f"LOCK TABLE {t.table('things')} IN ACCESS SHARE MODE"))  # a long read, say
        response = c.post(structure_url(t, "things"), {
            "op": "add_column", "confirm": "1", "token": token_in(shown.content.decode()), "add_column-name": "note",
            "add_column-type": "text", "add_column-nullable": "on"})
        other.rollback()
    assert response.status_code == 400 and problem_in(response.content.decode()).strip() == alter.TABLE_IN_USE
    assert "note" not in columns_of(t, "things")
    [event] = events()
    assert event.outcome == Outcome.FAILURE
