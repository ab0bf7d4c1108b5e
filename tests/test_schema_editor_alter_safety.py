"""The structure page where a change would leak, lose data or lose definition: refused, or done right (issue 5).

One test per finding of the security review of the first version (session 4), on the
live engines. Rows: T31 (masked and hidden columns, tables the user cannot see), T37
(nothing lost: rows, key actions, indexes, column constraints), T33 (every change that
ran is audited).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.explorer.schema import resolve_table
from bastion.schema_editor import alter, alter_checks, alterations
from tests.engines import mysql_target, postgresql_target, sqlite_target, target  # noqa: F401
from tests.test_schema_editor_alter import (
    alterer,
    change,
    columns_of,
    engine_of,
    events,
    ok,
    preview,
    rows,
    signed_in,
    statements,
    structure_url,
    things,
)
from tests.test_schema_editor_drop import make_user, problem_in

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["postgresql_target", "mysql_target"])
def server_target(request: pytest.FixtureRequest) -> Any:
    """PostgreSQL and MariaDB only (SQLite converts anything to anything, so a cast cannot fail)."""
    return request.getfixturevalue(request.param)


def masked_user(t: Any, column: str = "label") -> Any:
    return make_user(t, "masked", [(Action.ALTER, ""), (Action.VIEW, ""),
                                   (Action.VIEW, "things", column, ColumnMode.MASKED, MaskRule.FIXED)])


def hidden_user(t: Any, column: str = "amount") -> Any:
    return make_user(t, "partial", [(Action.ALTER, ""), (Action.VIEW, ""),
                                    (Action.VIEW, "things", column, ColumnMode.HIDDEN)])


def table_page(c: Any, t: Any, table: str) -> str:
    return c.get(f"/db/{t.connection.pk}/table/?{structure_url(t, table).split('?', 1)[1]}").content.decode()


def sqlite_sql(t: Any, name: str) -> str:
    with engine_of(t).connect() as conn:
        return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": name}).scalar_one()


def sqlite_key_actions(t: Any, table: str) -> list[tuple[str, str, str, str]]:
    with engine_of(t).connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text(
            'SELECT "from", "table", on_update, on_delete FROM pragma_foreign_key_list(:t)'), {"t": table}))


def show_create(t: Any, table: str) -> str:
    with engine_of(t).connect() as conn:
        return conn.execute(text(f"SHOW CREATE TABLE {t.q(table)}")).one()[1]


# --- T31: masked and hidden columns, tables the user cannot see -----------------------------------------
def refused(response: Any, message: str) -> str:
    body = response.content.decode()
    assert response.status_code == 400, problem_in(body)
    assert message in problem_in(body)
    return body


def test_T31_a_masked_column_cannot_be_retyped_or_indexed_so_errors_cannot_show_its_values(client, target):  # noqa: F811
    t = target
    things(t)
    t.run(f"UPDATE {t.table('things')} SET label = 'secret-4111'")  # noqa: S608 (test data)
    user = masked_user(t)
    c = signed_in(client, user)
    assert 'value="label"' not in c.get(structure_url(t, "things")).content.decode()  # not offered
    info = resolve_table(t.connection, t.schema, "things")
    for op, fields, change_ in (
            ("alter_column", {"column": "label", "type": "integer", "nullable": "keep", "default_mode": "keep"},
             alterations.AlterColumn("label", "integer")),
            ("add_index", {"name": "", "column_1": "label", "unique": "on"},
             alterations.AddIndex("ux", ("label",), True)),
            ("rename_column", {"column": "label", "new_name": "label2"},
             alterations.RenameColumn("label", "label2"))):
        response = preview(c, t, "things", op, fields)  # the form has no such choice
        assert response.status_code == 400 and "secret-4111" not in response.content.decode()
        with pytest.raises(alter_checks.Refused, match=alter_checks.MASKED_COLUMN):  # nor does the service take it
            alter.plan(user, info, change_)
    assert rows(t, "things", ["id", "label"]) == [(1, "secret-4111"), (2, "secret-4111"), (3, "secret-4111")]


def test_T31_a_column_or_table_named_by_grants_is_not_renamed(client, target):  # noqa: F811
    """Grants follow names: renaming would leave a hidden column's rule behind and show it."""
    t = target
    things(t)
    t.run(f"UPDATE {t.table('things')} SET amount = 987654")  # noqa: S608 (test data)
    hidden_user(t)  # another role hides "amount": its grant names the column and the table
    c = signed_in(client, alterer(t))
    refused(preview(c, t, "things", "rename_column", {"column": "amount", "new_name": "spent"}),
            "Grants of some roles name this column")
    refused(preview(c, t, "things", "rename_table", {"new_name": "things2"}), "Grants of some roles name this table")
    assert "amount" in columns_of(t, "things")
    assert not events().exists()


def test_T31_sqlite_rebuilds_need_every_column_in_clear(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE things (id INTEGER PRIMARY KEY, label TEXT, salary_secret INTEGER DEFAULT 4242)")
    c = signed_in(client, hidden_user(t, "salary_secret"))
    body = refused(preview(c, t, "things", "alter_column", {"column": "label", "nullable": "forbid",
                                                             "default_mode": "keep"}), "in clear")
    assert "salary_secret" not in body and "4242" not in body and not statements(body)


def test_T31_the_structure_page_lists_no_key_to_a_table_the_user_cannot_see(client, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('vault_of_secrets')} (id INTEGER PRIMARY KEY, pin_code INTEGER UNIQUE)",
          f"CREATE TABLE {t.table('things')} (id INTEGER PRIMARY KEY, ref INTEGER, "
          f"CONSTRAINT fk_things_ref FOREIGN KEY (ref) REFERENCES {t.table('vault_of_secrets')} (pin_code))")
    c = signed_in(client, make_user(t, "narrow", [(Action.ALTER, "things"), (Action.VIEW, "things")]))
    body = c.get(structure_url(t, "things")).content.decode()
    assert "vault_of_secrets" not in body and "pin_code" not in body


# --- T37: SQLite rebuilds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["CASCADE", "SET NULL"])
def test_T37_a_self_referencing_sqlite_table_keeps_its_rows_when_rebuilt(client, sqlite_target, action):  # noqa: F811
    """Dropping the old copy with foreign keys on would run its own ON DELETE rules on the new copy's rows."""
    t = sqlite_target
    t.run(f"CREATE TABLE tree (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES tree(id) ON DELETE {action}, "
          "note TEXT)", "INSERT INTO tree VALUES (1, NULL, 'a'), (2, 1, 'b'), (3, 2, 'c')")
    c = signed_in(client, alterer(t))
    ok(change(c, t, "tree", "drop_column", {"column": "note"}))
    assert rows(t, "tree", ["id", "parent"]) == [(1, None), (2, 1), (3, 2)]
    assert f"ON DELETE {action}" in sqlite_sql(t, "tree")


def test_T37_a_table_that_came_to_refer_meanwhile_keeps_its_rows(client, sqlite_target):  # noqa: F811
    """The reflection cache may not know a table that refers to this one: the rebuild must not depend on it."""
    t = sqlite_target
    t.run("CREATE TABLE parents (id INTEGER PRIMARY KEY, n INTEGER)", "INSERT INTO parents VALUES (1, 1)")
    c = signed_in(client, alterer(t))
    assert preview(c, t, "parents", "drop_column", {"column": "n"}).status_code == 200  # caches "none refer"
    t.execute(text("CREATE TABLE kids (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parents(id) "
                   "ON DELETE CASCADE)"), invalidate=False)
    t.execute(text("INSERT INTO kids VALUES (1, 1), (2, 1)"), invalidate=False)
    ok(change(c, t, "parents", "drop_column", {"column": "n"}))
    assert rows(t, "kids", ["id", "p"]) == [(1, 1), (2, 1)]


def token_of(response: Any) -> str:
    found = re.search(r'name="token" value="([^"]+)"', response.content.decode())
    assert found
    return found.group(1)


def test_T37_sqlite_rebuild_keeps_each_foreign_key_its_own_actions(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE a (id INTEGER PRIMARY KEY)", "CREATE TABLE b (id INTEGER PRIMARY KEY)",
          "CREATE TABLE kids (id INTEGER PRIMARY KEY, ra INTEGER REFERENCES a(id) ON DELETE CASCADE, "
          "rb INTEGER REFERENCES b(id) ON DELETE SET NULL, note TEXT)")
    expected = sqlite_key_actions(t, "kids")
    c = signed_in(client, alterer(t))
    for _ in range(8):  # the keys come back in any order from one reflection to the next
        shown = preview(c, t, "kids", "drop_column", {"column": "note"})
        sql = re.sub(r"\s+", " ", statements(shown.content.decode())[0])
        assert "REFERENCES a (id) ON DELETE CASCADE" in sql and "REFERENCES b (id) ON DELETE SET NULL" in sql
    for _ in range(8):  # and a preview is confirmed whatever order the run reflects them in
        ok(change(c, t, "kids", "drop_column", {"column": "note"}))
        t.run("ALTER TABLE kids ADD COLUMN note TEXT")
    assert sqlite_key_actions(t, "kids") == expected


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # as in production: SQLAlchemy only warns
@pytest.mark.parametrize("index", ["CREATE UNIQUE INDEX kids_email ON kids (lower(label))",
                                   "CREATE UNIQUE INDEX kids_email ON kids (label COLLATE NOCASE)",
                                   "CREATE INDEX kids_email ON kids (label DESC)",
                                   "CREATE INDEX kids_email ON kids (label) WHERE note IS NOT NULL"])
def test_T37_sqlite_tables_with_indexes_a_rebuild_would_change_are_not_rebuilt(client, sqlite_target, index):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE kids (id INTEGER PRIMARY KEY, label TEXT, note TEXT, extra TEXT)", index,
          "INSERT INTO kids VALUES (1, 'Ann', 'x', 'y')")
    c = signed_in(client, alterer(t))
    refused(preview(c, t, "kids", "drop_column", {"column": "extra"}), "one of its indexes")
    assert sqlite_sql(t, "kids_email") == index


def test_T37_sqlite_drop_foreign_key_drops_the_chosen_one_of_two_alike(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    t.run("CREATE TABLE a (id INTEGER PRIMARY KEY)", "CREATE TABLE b (id INTEGER PRIMARY KEY)",
          "CREATE TABLE kids (id INTEGER PRIMARY KEY, r INTEGER, FOREIGN KEY (r) REFERENCES a(id), "
          "FOREIGN KEY (r) REFERENCES b(id))")
    c = signed_in(client, alterer(t))
    body = c.get(structure_url(t, "kids")).content.decode()
    [number] = [n for n, label in re.findall(r'<option value="(\d)">([^<]*)</option>', body) if "→ b" in label]
    ok(change(c, t, "kids", "drop_foreign_key", {"key": number}))
    assert [table for _col, table, _u, _d in sqlite_key_actions(t, "kids")] == ["a"]


# --- T37: MariaDB rewrites a whole column for MODIFY ---------------------------------------------------
MARIADB_COLUMNS = {
    "ck": ("INT CHECK (ck > 0)", "1"),  # the column's CHECK constraint
    "js": ("JSON", "'{}'"),  # MariaDB's JSON is LONGTEXT + CHECK (json_valid(js))
    "inv": ("INT INVISIBLE", "1"),
    "en": ("ENUM('a','c\\\\d')", "'a'"),  # allowed values a and c\d
}


@pytest.mark.parametrize("column", list(MARIADB_COLUMNS))
def test_T37_mariadb_rename_keeps_the_whole_column_and_modify_refuses_what_it_would_lose(client, mysql_target,  # noqa: F811
                                                                                      column):
    t = mysql_target
    definition, value = MARIADB_COLUMNS[column]
    t.run(f"CREATE TABLE things (id INTEGER PRIMARY KEY, {column} {definition})",
          f"INSERT INTO things (id, {column}) VALUES (1, {value})")  # noqa: S608 (test data)
    before = show_create(t, "things")
    c = signed_in(client, alterer(t))
    refused(preview(c, t, "things", "alter_column", {"column": column, "nullable": "allow",
                                                      "default_mode": "keep"}), "rewrite the whole column")
    assert show_create(t, "things") == before
    ok(change(c, t, "things", "rename_column", {"column": column, "new_name": column + "2"}))
    assert show_create(t, "things").replace(f"`{column}2`", f"`{column}`") == before


# --- T33: every change that ran is audited ----------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # as in production: SQLAlchemy only warns
@pytest.mark.parametrize("odd", ["POINT", "INET6"])
def test_T33_a_change_is_audited_even_when_a_column_type_cannot_be_described(client, mysql_target, odd):  # noqa: F811
    t = mysql_target
    t.run(f"CREATE TABLE things (id INTEGER PRIMARY KEY, odd {odd}, label VARCHAR(10))")
    c = signed_in(client, alterer(t))
    ok(change(c, t, "things", "add_index", {"name": "ix_label", "column_1": "label"}))
    [event] = events()
    assert event.after["ddl"] and event.details["change"] == "AddIndex"


# --- generated and identity columns ---------------------------------------------------------------------
def test_generated_and_identity_columns_are_refused_with_a_message(client, target):  # noqa: F811
    t = target
    generated = {"mysql": "INT AS (n * 2) VIRTUAL", "sqlite": "INTEGER GENERATED ALWAYS AS (n * 2) VIRTUAL",
                 "postgresql": "INTEGER GENERATED ALWAYS AS (n * 2) STORED"}[t.kind]
    t.run(f"CREATE TABLE {t.table('things')} (id INTEGER PRIMARY KEY, n INTEGER, g {generated})")
    c = signed_in(client, alterer(t))
    refused(preview(c, t, "things", "rename_column", {"column": "g", "new_name": "g2"}),
            "Generated and identity columns")
