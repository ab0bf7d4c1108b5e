"""Dropping a table or view, or emptying a table, through the schema editor (issue 5).

Every test goes through HTTP against a real engine and checks what the database really
holds afterwards. Rows: T37 (typed confirmation, recent re-authentication, nothing
half-done), T20 (drop grant, invisible tables are 404), T33 (one audit event with the
definition), T02 (hostile names dropped exactly).
"""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest
from allauth.account.internal.userkit import user_id_to_str

from bastion.access.models import Action, ColumnMode
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections import reflection
from bastion.schema_editor import drop
from tests.conftest import STRONG_PASSWORD
from tests.engines import HOSTILE, postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user

pytestmark = pytest.mark.django_db


# --- helpers -------------------------------------------------------------------------------------------
def make_user(t: Any, username: str, grants: list[tuple]) -> Any:
    """A user with a password (re-authentication needs one), holding ``grants`` (see granted_user)."""
    return granted_user(t, username, grants, STRONG_PASSWORD)


def dropper(t: Any, username: str = "dropper") -> Any:
    return make_user(t, username, [(Action.DROP, ""), (Action.VIEW, "")])


def reauthenticated(client: Any, user: Any) -> None:
    """What allauth records after a password re-authentication (did_recently_reauthenticate reads it)."""
    session = client.session
    session["account_authentication_methods"] = [{"method": "password", "at": time.time(), "reauthenticated": True}]
    session["account_authentication_methods_user"] = user_id_to_str(user)
    session.save()


def signed(client: Any, user: Any, *, recent: bool = True) -> Any:
    client.force_login(user)
    if recent:
        reauthenticated(client, user)
    return client


def drop_url(t: Any, name: str, **extra: str) -> str:
    query = {"s": t.schema} if t.schema else {}
    query.update(t=name, **extra)
    return f"/db/{t.connection.pk}/schema/drop-table/?{urlencode(query)}"


def shown_sql(body: str) -> dict[str, str]:
    return {action: unescape(sql) for action, sql in
            re.findall(r'<pre class="ddl" data-action="(\w+)">(.*?)</pre>', body, re.S)}


def problem_in(body: str) -> str:
    found = re.search(r'<div class="error" role="alert">(.*?)</div>', body, re.S)
    return unescape(re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""


def tables(t: Any) -> list[str]:
    reflection.invalidate(t.connection)
    return reflection.table_names(t.connection, t.schema)


def count(t: Any, name: str) -> int:
    from sqlalchemy import create_engine, text

    engine = t.admin or create_engine(f"sqlite:///{t.sqlite_path}")
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT count(*) FROM {t.table(name)}")).scalar_one()  # noqa: S608 (test)
    if engine is not t.admin:
        engine.dispose()
    return int(found)


def people(t: Any, name: str = "people", rows: int = 3) -> None:
    t.run(f"CREATE TABLE {t.table(name)} (id INTEGER PRIMARY KEY, label VARCHAR(20) NOT NULL)")
    for number in range(1, rows + 1):
        t.run(f"INSERT INTO {t.table(name)} (id, label) VALUES ({number}, 'row {number}')")  # noqa: S608 (test)


def events(action: str) -> Any:
    return AuditEvent.objects.filter(action=action)


# --- drop and empty on every engine --------------------------------------------------------------------
def test_T37_T33_drop_a_table_with_typed_name_audited_once_with_its_definition(client, target):  # noqa: F811
    t = target
    people(t)
    t.run(f"CREATE TABLE {t.table('other')} (id INTEGER PRIMARY KEY)")
    c = signed(client, dropper(t))
    page = c.get(drop_url(t, "people"))
    body = page.content.decode()
    assert page.status_code == 200
    assert "people" in tables(t) and count(t, "people") == 3  # GET changes nothing
    assert re.search(r'class="row-count">\s*3\s*<', body)
    sql = shown_sql(body)
    assert sql["drop"] == f"DROP TABLE {t.table('people')}"
    expected_empty = (f"DELETE FROM {t.table('people')}" if t.kind == "sqlite"  # noqa: S608 (test names, quoted by t.q)
                      else f"TRUNCATE TABLE {t.table('people')}")
    assert sql["empty"] == expected_empty
    assert not events(drop.TABLE_DROPPED).exists()

    response = c.post(drop_url(t, "people"), {"action": "drop", "name": "people"})
    assert response.status_code == 302, problem_in(response.content.decode())
    assert response["Location"] == (f"/db/{t.connection.pk}/" + (f"?s={t.schema}" if t.schema else ""))
    assert tables(t) == ["other"]
    [event] = events(drop.TABLE_DROPPED)
    assert event.outcome == Outcome.SUCCESS
    assert event.after["ddl"] == sql["drop"]
    assert event.details["rows"] == 3 and event.before["rows"] == 3
    assert [c_["name"] for c_ in event.before["columns"]] == ["id", "label"]
    assert all(c_["type"] for c_ in event.before["columns"])
    assert event.before["primary_key"] == ["id"]
    assert event.before["foreign_keys"] == []


def test_T37_T33_empty_a_table_keeps_it_and_audits_once(client, target):  # noqa: F811
    t = target
    people(t)
    c = signed(client, dropper(t))
    response = c.post(drop_url(t, "people"), {"action": "empty", "name": "people"})
    assert response.status_code == 302, problem_in(response.content.decode())
    assert "people" in tables(t) and count(t, "people") == 0
    [event] = events(drop.TABLE_EMPTIED)
    assert event.details["rows"] == 3
    assert event.after["ddl"].startswith("DELETE FROM" if t.kind == "sqlite" else "TRUNCATE TABLE")
    assert [c_["name"] for c_ in event.before["columns"]] == ["id", "label"]
    assert not events(drop.TABLE_DROPPED).exists()


def test_T37_a_view_can_be_dropped_not_emptied(client, target):  # noqa: F811
    t = target
    people(t)
    t.run(f"CREATE VIEW {t.table('v')} AS SELECT id FROM {t.table('people')}")  # noqa: S608 (test names, quoted by t.q)
    c = signed(client, dropper(t))
    body = c.get(drop_url(t, "v")).content.decode()
    assert shown_sql(body) == {"drop": f"DROP VIEW {t.table('v')}"}
    refused = c.post(drop_url(t, "v"), {"action": "empty", "name": "v"})
    assert refused.status_code == 400
    assert "v" in reflection.view_names(t.connection, t.schema)
    assert c.post(drop_url(t, "v"), {"action": "drop", "name": "v"}).status_code == 302
    reflection.invalidate(t.connection)
    assert reflection.view_names(t.connection, t.schema) == [] and count(t, "people") == 3
    assert events(drop.TABLE_DROPPED).get().before["kind"] == "view"


# --- confirmation and re-authentication ----------------------------------------------------------------
def test_T37_wrong_typed_name_is_refused_and_changes_nothing(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    c = signed(client, dropper(t))
    for typed in ("", "People", "people ", "other"):
        response = c.post(drop_url(t, "people"), {"action": "drop", "name": typed})
        assert response.status_code == 400
        assert "not the table's name" in problem_in(response.content.decode())
    assert "people" in tables(t) and count(t, "people") == 3
    assert not AuditEvent.objects.filter(action__startswith="schema.").exists()


def test_T37_without_recent_reauthentication_redirects_and_comes_back(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    user = dropper(t)
    c = signed(client, user, recent=False)
    response = c.post(drop_url(t, "people"), {"action": "empty", "name": "people"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/?next=")
    assert count(t, "people") == 3 and not events(drop.TABLE_EMPTIED).exists()
    # The password, then back to the confirmation page (with the choice, not the typed name), then it runs.
    back = c.post(response["Location"], {"password": STRONG_PASSWORD})
    assert back.status_code == 302 and back["Location"] == drop_url(t, "people", a="empty")
    page = c.get(back["Location"]).content.decode()
    assert 'value="empty" checked' in page and 'name="name" value' not in page
    assert count(t, "people") == 3
    assert c.post(back["Location"], {"action": "empty", "name": "people"}).status_code == 302
    assert count(t, "people") == 0 and events(drop.TABLE_EMPTIED).count() == 1


def test_T37_an_old_reauthentication_is_not_enough(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    user = dropper(t)
    c = signed(client, user)
    session = c.session
    session["account_authentication_methods"][0]["at"] = time.time() - 3600
    session.save()
    response = c.post(drop_url(t, "people"), {"action": "drop", "name": "people"})
    assert response.status_code == 302 and "/accounts/reauthenticate/" in response["Location"]
    assert "people" in tables(t)


# --- permissions ---------------------------------------------------------------------------------------
def test_T20_user_without_drop_gets_403_and_no_link(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    viewer = make_user(t, "viewer", [(Action.VIEW, ""), (Action.ALTER, ""), (Action.DELETE, "")])
    c = signed(client, viewer)
    assert c.get(drop_url(t, "people")).status_code == 403
    assert c.post(drop_url(t, "people"), {"action": "drop", "name": "people"}).status_code == 403
    assert "people" in tables(t) and count(t, "people") == 3
    assert "Drop or empty" not in c.get(f"/db/{t.connection.pk}/table/?t=people").content.decode()


def test_T20_explorer_table_page_links_to_drop_for_a_dropper(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    c = signed(client, dropper(t))
    body = c.get(f"/db/{t.connection.pk}/table/?t=people").content.decode()
    assert f'href="/db/{t.connection.pk}/schema/drop-table/?t=people"' in body and "Drop or empty" in body


def test_T20_a_table_the_user_cannot_see_is_404_even_with_a_drop_grant(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    people(t, "secret")
    # Drop on the whole connection: a table that is not there is 404, never an error or a 403 that tells.
    c = signed(client, dropper(t, "wide"))
    assert c.get(drop_url(t, "missing")).status_code == 404
    assert c.post(drop_url(t, "missing"), {"action": "drop", "name": "missing"}).status_code == 404
    assert c.get(drop_url(t, "SECRET")).status_code == 404  # spelled otherwise than in the catalogue
    # Drop granted on "people" only: "secret" and a table that does not exist answer alike (no existence leak).
    only = make_user(t, "only", [(Action.DROP, "people"), (Action.VIEW, "people")])
    c2 = signed(client, only)
    assert c2.get(drop_url(t, "people")).status_code == 200
    secret = c2.post(drop_url(t, "secret"), {"action": "drop", "name": "secret"}).status_code
    assert secret == c2.get(drop_url(t, "nothere")).status_code and secret in (403, 404)
    assert set(tables(t)) == {"people", "secret"} and count(t, "secret") == 3
    assert not AuditEvent.objects.filter(action__startswith="schema.").exists()


# --- hostile names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE[:2])
def test_T02_hostile_table_names_are_dropped_exactly(client, target, name):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('t')} (id INTEGER PRIMARY KEY)", f"CREATE TABLE {t.table(name)} (id INTEGER)",
          f"INSERT INTO {t.table(name)} (id) VALUES (1)")  # noqa: S608 (test names, quoted by t.q)
    c = signed(client, dropper(t))
    page = c.get(drop_url(t, name))
    assert page.status_code == 200
    assert shown_sql(page.content.decode())["drop"] == f"DROP TABLE {t.table(name)}"
    response = c.post(drop_url(t, name), {"action": "empty", "name": name})
    assert response.status_code == 302 and count(t, name) == 0
    response = c.post(drop_url(t, name), {"action": "drop", "name": name})
    assert response.status_code == 302, problem_in(response.content.decode())
    assert tables(t) == ["t"]
    assert events(drop.TABLE_DROPPED).get().details["table"] == name


# --- referenced tables ---------------------------------------------------------------------------------
def test_T37_a_referenced_table_lists_its_references_and_is_not_dropped(client, postgresql_target):  # noqa: F811
    t = postgresql_target
    people(t)
    t.run(f"CREATE TABLE {t.table('orders')} (id INTEGER PRIMARY KEY, "
          f"person INTEGER CONSTRAINT orders_person_fk REFERENCES {t.table('people')} (id))",
          f"CREATE TABLE {t.table('hidden_notes')} (id INTEGER PRIMARY KEY, "
          f"person INTEGER REFERENCES {t.table('people')} (id))",
          f"INSERT INTO {t.table('orders')} VALUES (1, 1)")  # noqa: S608 (test names, quoted by t.q)
    user = make_user(t, "partial", [(Action.DROP, "people"), (Action.VIEW, "people"), (Action.VIEW, "orders")])
    c = signed(client, user)
    body = c.get(drop_url(t, "people")).content.decode()
    assert "orders" in body and "orders_person_fk" in body
    assert "hidden_notes" not in body and "and 1 other reference" in body
    for action in ("drop", "empty"):
        response = c.post(drop_url(t, "people"), {"action": action, "name": "people"})
        assert response.status_code == 409
        assert problem_in(response.content.decode()).strip() == drop.DEPENDENTS
    assert set(tables(t)) == {"people", "orders", "hidden_notes"}
    assert count(t, "people") == 3 and count(t, "orders") == 1
    failures = AuditEvent.objects.filter(action__startswith="schema.table_")
    assert failures.count() == 2 and {e.outcome for e in failures} == {Outcome.FAILURE}


# --- what would reach other tables is refused (security review) --------------------------------------------
def narrow(t, table: str = "people"):
    return make_user(t, "narrow", [(Action.DROP, table), (Action.VIEW, table)])


@pytest.mark.parametrize("action", ["empty", "drop"])
def test_T37_T31_sqlite_refuses_when_referring_tables_would_cascade(client, sqlite_target, action):  # noqa: F811
    t = sqlite_target
    people(t)
    t.run("CREATE TABLE secret (id INTEGER PRIMARY KEY, person INTEGER REFERENCES people(id) ON DELETE CASCADE)",
          "INSERT INTO secret VALUES (1, 1), (2, 2)")
    c = signed(client, narrow(t))
    assert "would also change other tables" in c.get(drop_url(t, "people")).content.decode()
    response = c.post(drop_url(t, "people"), {"action": action, "name": "people"})
    assert response.status_code == 400 and "would also change other tables" in problem_in(response.content.decode())
    assert count(t, "secret") == 2 and count(t, "people") == 3


def test_T37_sqlite_refuses_to_empty_a_table_whose_triggers_write_elsewhere(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people(t)
    t.run("CREATE TABLE secret (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO secret VALUES (1, 'a'), (2, 'b')",
          "CREATE TRIGGER wipe AFTER DELETE ON people BEGIN DELETE FROM secret; END")
    response = signed(client, narrow(t)).post(drop_url(t, "people"), {"action": "empty", "name": "people"})
    assert response.status_code == 400
    assert count(t, "secret") == 2 and count(t, "people") == 3


def test_T37_postgresql_refuses_tables_with_inheriting_tables(client, postgresql_target):  # noqa: F811
    t = postgresql_target
    people(t)
    t.run(f"CREATE TABLE {t.table('secret_child')} (extra TEXT) INHERITS ({t.table('people')})",
          f"INSERT INTO {t.table('secret_child')} VALUES (10, 'x', 'private')")  # noqa: S608
    c = signed(client, narrow(t))
    for action in ("empty", "drop"):
        assert c.post(drop_url(t, "people"), {"action": action, "name": "people"}).status_code == 400
    assert count(t, "secret_child") == 1 and "people" in tables(t)


def test_T37_postgresql_refuses_partitioned_tables(client, postgresql_target):  # noqa: F811
    t = postgresql_target
    t.run(f"CREATE TABLE {t.table('p')} (id INTEGER, v TEXT) PARTITION BY RANGE (id)",
          f"CREATE TABLE {t.table('p_secret')} PARTITION OF {t.table('p')} FOR VALUES FROM (0) TO (100)",
          f"INSERT INTO {t.table('p')} VALUES (1, 'a')")  # noqa: S608
    response = signed(client, narrow(t, "p")).post(drop_url(t, "p"), {"action": "drop", "name": "p"})
    assert response.status_code == 400
    assert {"p", "p_secret"} <= set(tables(t))


def test_T31_a_reference_by_a_hidden_column_is_counted_not_named(client, target):  # noqa: F811
    t = target
    people(t)
    t.run(f"CREATE TABLE {t.table('orders')} (id INTEGER PRIMARY KEY, secret_person_col INTEGER, "
          f"FOREIGN KEY (secret_person_col) REFERENCES {t.table('people')} (id))")
    user = make_user(t, "colhidden", [(Action.DROP, "people"), (Action.VIEW, "people"), (Action.VIEW, "orders"),
                                      (Action.VIEW, "orders", "secret_person_col", ColumnMode.HIDDEN)])
    body = signed(client, user).get(drop_url(t, "people")).content.decode()
    assert "secret_person_col" not in body and "1 other reference" in body
