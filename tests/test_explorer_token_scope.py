"""Tokens and links stay inside the table and the view they were made for (T31, T38).

Regression tests for the explorer's security review: a cursor or row token made
on one table must not seek or find rows in another (an oracle on hidden or
masked keys), links must not open rows by masked columns, engine error text
must not name hidden columns, and a stale bulk selection must not delete a
row that changed (or reused a rowid) since the page was shown.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.http import QueryDict

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.policy import VISIBLE, ColumnView
from bastion.access.roles import add_grant
from bastion.connections.models import Connection
from bastion.explorer import changes
from bastion.explorer.browse import BrowseParams, browse, cursor_token
from bastion.explorer.rowkeys import row_token
from bastion.explorer.rows import find_row
from bastion.explorer.schema import resolve_table
from tests.conftest import login
from tests.engines import postgresql_target, sqlite_target, target  # noqa: F401  (fixtures)
from tests.explorer_fixtures import clerk, people_table, rows, superuser, table_info

pytestmark = pytest.mark.django_db


def _all_visible(info):
    return dict.fromkeys(info.column_names, VISIBLE)


def _page(info, **params):
    query = QueryDict(mutable=True)
    for name, value in params.items():
        query[name] = value
    return browse(info, _all_visible(info), BrowseParams.from_query(query), {})


def test_T31_a_cursor_made_on_one_table_is_refused_on_another(target):  # noqa: F811
    for name in ("items", "staff"):
        target.run(f"CREATE TABLE {target.table(name)} (id INTEGER PRIMARY KEY, label VARCHAR(20))")
        target.run(f"INSERT INTO {target.table(name)} (id, label) VALUES (1, 'a'), (5, 'b'), (9, 'c')")  # noqa: S608
    items, staff = table_info(target, "items"), table_info(target, "staff")
    cursor = cursor_token("after", items.connection.pk, items.schema, "items", None, False, ["id"], [4])
    assert [r.cells[0].text for r in _page(items, after=cursor).rows] == ["5", "9"]
    page = _page(staff, after=cursor)
    assert page.errors and [r.cells[0].text for r in page.rows] == ["1", "5", "9"]  # not seeked: first page
    sorted_cursor = cursor_token("after", items.connection.pk, items.schema, "items", "label", False, ["id"],
                                 ["a", 1])
    assert _page(items, after=sorted_cursor).errors  # made for another sort
    assert not _page(items, after=sorted_cursor, sort="label").errors


def test_T31_a_row_token_made_on_one_table_finds_nothing_in_another(target):  # noqa: F811
    people = people_table(target)
    target.run(f"CREATE TABLE {target.table('scratch')} (id INTEGER PRIMARY KEY)")
    scratch = table_info(target, "scratch")
    boss = superuser()
    made = changes.insert_row(boss, None, scratch, {"id": 1})
    assert find_row(scratch, _all_visible(scratch), made) is not None
    assert find_row(people, _all_visible(people), made) is None  # id 1 exists in people too
    with pytest.raises(changes.ChangeRefused):
        changes.delete_row(boss, None, people, made)
    assert len(rows(target, "people")) == 3


def test_T31_a_unique_key_the_user_sees_masked_cannot_name_a_row(target):  # noqa: F811
    people = people_table(target)  # name is UNIQUE and NOT NULL: a key a foreign key could point at
    by_name = row_token(people.connection.pk, people.schema, "people", ["name"], ["ann"])
    assert find_row(people, _all_visible(people), by_name) is not None
    masked = {**_all_visible(people), "name": ColumnView(ColumnMode.MASKED, MaskRule.LAST4)}
    assert find_row(people, masked, by_name) is None  # would confirm a masked value


def test_T31_engine_errors_do_not_name_columns_the_user_cannot_see(target):  # noqa: F811
    people = people_table(target)
    user = clerk(target)  # hidden_col is hidden for the clerk
    with pytest.raises(changes.ChangeRefused) as refused:
        changes.insert_row(user, None, people, {"name": "ann", "qty": 1})  # duplicate name
    message = str(refused.value)
    assert "same value" in message and "people_name_unique" not in message and "hidden_col" not in message
    # A user who sees every column gets the engine's own words, constraint name included.
    with pytest.raises(changes.ChangeRefused) as refused:
        changes.insert_row(superuser(), None, people, {"name": "ann", "qty": 1})
    assert "unique" in str(refused.value).lower()


def test_T38_a_stale_bulk_selection_deletes_nothing(sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE notes (body TEXT)")  # no primary key: rows go by rowid, which SQLite reuses
    t.run("INSERT INTO notes (body) VALUES ('a'), ('b'), ('c')")
    info = table_info(t, "notes")
    page = browse(info, _all_visible(info), BrowseParams(size=25), {})
    last = page.rows[-1].token  # 'c', the highest rowid
    t.run("DELETE FROM notes WHERE body = 'c'")
    t.run("INSERT INTO notes (body) VALUES ('NEW')")  # takes the same rowid
    with pytest.raises(changes.EditConflict, match="changed after the page was loaded"):
        changes.delete_rows(superuser(), None, info, [page.rows[0].token, last])
    with sqlite3.connect(t.sqlite_path) as raw:
        assert [r[0] for r in raw.execute("SELECT body FROM notes ORDER BY rowid")] == ["a", "b", "NEW"]


@pytest.fixture
def linked(tmp_path, settings, make_user):
    """orders.staff_ssn references staff.ssn, which the user sees masked; staff_ref.staff_id is clear."""
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "linked.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.executescript("""
            CREATE TABLE staff (id INTEGER PRIMARY KEY, ssn TEXT NOT NULL UNIQUE, name TEXT);
            INSERT INTO staff VALUES (1, '111-22-3333', 'alice');
            CREATE TABLE orders (id INTEGER PRIMARY KEY, staff_ssn TEXT REFERENCES staff (ssn),
                                 staff_id INTEGER REFERENCES staff (id));
            INSERT INTO orders VALUES (1, '111-22-3333', 1);
            CREATE TABLE secrets (id INTEGER PRIMARY KEY);
            CREATE TABLE audit_notes (id INTEGER PRIMARY KEY, secret_id INTEGER REFERENCES secrets (id));
        """)
    connection = Connection.objects.create(name="linked", engine="sqlite", sqlite_path=str(path))
    role = Group.objects.create(name="Clerks")
    for table in ("staff", "orders", "audit_notes"):
        add_grant(None, None, role, action=Action.VIEW, connection=connection, table=table)
    add_grant(None, None, role, action=Action.VIEW, connection=connection, table="staff", column="ssn",
              column_mode=ColumnMode.MASKED, mask_rule=MaskRule.LAST4)
    user = make_user("carl")
    user.groups.add(role)
    return connection


def test_T31_links_never_open_a_row_by_a_masked_column_nor_name_tables_out_of_reach(client, linked):
    login(client, "carl")
    body = client.get(f"/db/{linked.pk}/table/?" + urlencode({"t": "orders"})).content.decode()
    # staff_id links to the row (by its visible primary key); staff_ssn does not (by the masked ssn).
    assert body.count("/row/?t=staff&amp;k=") == 1 and "<td>111-22-3333</td>" in body
    notes = client.get(f"/db/{linked.pk}/table/?" + urlencode({"t": "audit_notes"})).content.decode()
    assert "secrets" not in notes  # no "Foreign key to secrets" for a table the user cannot see


def test_offset_pages_use_the_checked_page_size(client, admin, tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "v.sqlite3"
    with sqlite3.connect(path) as raw:
        raw.executescript("CREATE TABLE t (x INTEGER); CREATE VIEW v AS SELECT x FROM t;")
        raw.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(60)])
    connection = Connection.objects.create(name="v", engine="sqlite", sqlite_path=str(path))
    login(client, admin.username)
    for size in ("abc", "-50", "10"):
        response = client.get(f"/db/{connection.pk}/table/?" + urlencode({"t": "v", "size": size}))
        assert response.status_code == 200
        assert "offset=50" in response.content.decode()  # the default size of 50, whatever was typed


def test_postgresql_search_and_contains_work_on_enum_inet_and_array_columns(postgresql_target):  # noqa: F811
    t = postgresql_target
    t.run(f"CREATE TYPE {t.q(t.schema)}.mood AS ENUM ('happy', 'sad')")
    t.run(f"CREATE TABLE {t.table('hosts')} (id integer PRIMARY KEY, mood {t.q(t.schema)}.mood, addr inet, "
          f"tags text[], label text)")
    t.run(f"INSERT INTO {t.table('hosts')} VALUES (1, 'happy', '10.0.0.1', ARRAY['x'], 'one'), "  # noqa: S608
          f"(2, 'sad', '192.168.1.1', ARRAY['y'], 'two')")
    info = resolve_table(t.connection, t.schema, "hosts")
    assert [r.cells[0].text for r in _page(info, q="192.168").rows] == ["2"]
    assert [r.cells[0].text for r in _page(info, fc="mood", fo="contains", fv="app").rows] == ["1"]
    assert not _page(info, q="one").errors


def test_long_texts_and_blobs_are_previewed_and_bulk_delete_still_matches_them(target):  # noqa: F811
    blob = {"sqlite": "BLOB", "postgresql": "bytea", "mysql": "LONGBLOB"}[target.kind]
    target.run(f"CREATE TABLE {target.table('docs')} (id INTEGER PRIMARY KEY, body TEXT, data {blob})")
    info = table_info(target, "docs")
    boss = superuser()
    long_text = "é" * 9_999 + "!"
    changes.insert_row(boss, None, info, {"id": 1, "body": long_text, "data": b"\x00" * 3_000_000})
    changes.insert_row(boss, None, info, {"id": 2, "body": "short", "data": None})
    page = browse(info, _all_visible(info), BrowseParams(size=25), {})
    body, data = page.rows[0].cells[1], page.rows[0].cells[2]
    assert body.truncated and body.length == 10_000 and body.text == "é" * 200
    assert data.binary_size == 3_000_000
    assert page.rows[1].cells[1].text == "short" and page.rows[1].cells[2].null
    # The tokens' digests (made from previews) match the full rows the delete reads.
    assert changes.delete_rows(boss, None, info, [r.token for r in page.rows]) == 2
