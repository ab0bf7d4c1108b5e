"""Creating a table through the schema editor's forms on SQLite, PostgreSQL and MariaDB (issue 5, first slice).

Every test goes through HTTP (form, preview, confirm) against a real engine and checks what the database
really holds afterwards, by reflection and by using the table. Rows: T02 (identifiers), T20 (permissions),
T33 (one audit event per creation), T37 (nothing half-created; what runs is what was previewed).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.http import QueryDict
from sqlalchemy import text

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.roles import add_grant
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections import reflection
from bastion.explorer.schema import KeyKind, resolve_table
from bastion.schema_editor import services
from bastion.schema_editor.definition import ForeignKeySpec, TableSpec
from tests.engines import mysql_target, postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user, rows

pytestmark = pytest.mark.django_db

CREATED = services.TABLE_CREATED


# --- helpers -------------------------------------------------------------------------------------------
def make_user(t: Any, username: str, grants: list[tuple]) -> Any:
    return granted_user(t, username, grants)


def builder(t: Any, username: str = "builder") -> Any:
    """May change the schema and view every table of the connection."""
    return make_user(t, username, [(Action.ALTER, ""), (Action.VIEW, "")])


def editor_url(t: Any) -> str:
    url = f"/db/{t.connection.pk}/schema/new-table/"
    if not t.schema:
        return url
    query = QueryDict(mutable=True)
    query["s"] = t.schema
    return f"{url}?{query.urlencode()}"


def form_data(name: str, columns: list[dict[str, Any]], keys: list[dict[str, Any]] = (), **buttons: str) -> dict:
    """What a browser posts: ``columns`` and ``keys`` as dicts of field -> value (True ticks a box)."""
    data = {"name": name, "columns-TOTAL_FORMS": str(len(columns)), "columns-INITIAL_FORMS": "0",
            "keys-TOTAL_FORMS": str(len(keys)), "keys-INITIAL_FORMS": "0", **buttons}
    for prefix, entries, defaults in (("columns", columns, {"type": "integer"}), ("keys", keys, {})):
        for index, entry in enumerate(entries):
            for field, value in {**defaults, **entry}.items():
                if value is True:
                    data[f"{prefix}-{index}-{field}"] = "on"
                elif value is not False and value is not None:
                    data[f"{prefix}-{index}-{field}"] = value
    return data


def shown_sql(body: str) -> str | None:
    found = re.search(r'<pre class="ddl">(.*?)</pre>', body, re.S)
    return unescape(found.group(1)) if found else None


def token_in(body: str) -> str | None:
    found = re.search(r'name="token" value="([^"]*)"', body)
    return unescape(found.group(1)) if found else None


def problems_in(body: str) -> str:
    """The text of the page's error boxes and error lists."""
    parts = re.findall(r'<div class="error" role="alert">(.*?)</div>|<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', body,
                       re.S)
    return unescape(re.sub(r"<[^>]+>", " ", " ".join(a + b for a, b in parts)))


def preview(client: Any, t: Any, name: str, columns: list[dict], keys: list[dict] = ()) -> tuple[Any, str, str]:
    response = client.post(editor_url(t), form_data(name, columns, keys, preview="1"))
    body = response.content.decode()
    assert response.status_code == 200, problems_in(body) or body[:2000]
    return response, shown_sql(body), token_in(body)


def create(client: Any, t: Any, name: str, columns: list[dict], keys: list[dict] = ()) -> Any:
    """Preview then confirm; the confirm's response (a redirect when it worked)."""
    _, _, token = preview(client, t, name, columns, keys)
    return client.post(editor_url(t), form_data(name, columns, keys, confirm="1", token=token))


def created_ok(client: Any, t: Any, name: str, columns: list[dict], keys: list[dict] = ()) -> Any:
    response = create(client, t, name, columns, keys)
    assert response.status_code == 302, problems_in(response.content.decode())
    return response


def tables(t: Any) -> list[str]:
    reflection.invalidate(t.connection)
    return reflection.table_names(t.connection, t.schema)


def columns_of(t: Any, name: str) -> dict[str, dict[str, Any]]:
    reflection.invalidate(t.connection)
    return {c["name"]: c for c in reflection.columns(t.connection, t.schema, name)}


def events(outcome: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(action=CREATED).order_by("seq")
    return list(found.filter(outcome=outcome) if outcome else found)


@pytest.fixture
def signed_in(client: Any, target: Any) -> Any:  # noqa: F811
    client.force_login(builder(target))
    return client


# --- every column type -------------------------------------------------------------------------------
EVERY_TYPE = [
    {"name": "id", "type": "integer", "primary_key": True, "autoincrement": True},
    {"name": "i", "type": "integer", "default": "7"},
    {"name": "big", "type": "bigint", "nullable": True, "default": "-9000000000"},
    {"name": "d", "type": "decimal", "size": "12,2", "default": "3.50"},
    {"name": "f", "type": "float", "default": "1.5"},
    {"name": "b", "type": "boolean", "default": "true"},
    {"name": "t", "type": "text", "nullable": True, "default": "it's 100% \\ fine"},
    {"name": "s", "type": "varchar", "size": "20", "unique": True},
    {"name": "da", "type": "date", "default": "2024-01-02"},
    {"name": "ti", "type": "time", "nullable": True},
    {"name": "ts", "type": "timestamp", "nullable": True, "default": "2024-01-02 03:04:05"},
    {"name": "j", "type": "json", "nullable": True, "default": '{"a": [1, "x"]}'},
    {"name": "bin", "type": "binary", "nullable": True},
]
KINDS = {"id": "integer", "i": "integer", "big": "integer", "d": "decimal", "f": "float", "t": "text", "s": "text",
         "da": "date", "ti": "time", "ts": "datetime", "j": "json", "bin": "binary"}


def test_every_column_type_with_nullability_defaults_keys_and_autoincrement(signed_in, target):  # noqa: F811
    t = target
    columns = list(EVERY_TYPE)
    if t.kind == "postgresql":
        columns.append({"name": "tz", "type": "timestamptz", "nullable": True, "default": "2024-01-02 03:04:05+00"})
    response = created_ok(signed_in, t, "typed", columns)
    assert response["Location"].startswith(f"/db/{t.connection.pk}/table/")

    reflected = columns_of(t, "typed")
    assert list(reflected) == [c["name"] for c in columns]
    for column in columns:
        facts = reflected[column["name"]]
        assert facts["nullable"] is bool(column.get("nullable")), column["name"]
        if not (t.kind == "mysql" and column["name"] == "t"):
            # (MariaDB writes a TEXT default as 'it\'s...', which SQLAlchemy's reflection does not read: the
            # INSERT below proves that one.)
            has_default = "default" in column or (column.get("autoincrement", False) and t.kind == "postgresql")
            assert (facts["default"] is not None) is has_default, column["name"]
        assert facts["primary_key"] is bool(column.get("primary_key")), column["name"]
    for name, kind in KINDS.items():
        assert reflected[name]["kind"] == kind, (name, reflected[name])
    assert reflected["b"]["kind"] == ("integer" if t.kind == "mysql" else "boolean")  # MySQL's BOOL is TINYINT(1)
    assert (reflected["d"]["precision"], reflected["d"]["scale"]) == (12, 2)
    assert reflected["s"]["length"] == 20
    if t.kind == "postgresql":
        assert reflected["tz"]["kind"] == "datetime" and reflected["tz"]["timezone"] is True
        assert reflected["j"]["type"] == "JSONB"
    if t.kind == "mysql":
        assert reflected["t"]["type"] == "LONGTEXT" and reflected["bin"]["type"] == "LONGBLOB"

    info = resolve_table(t.connection, t.schema, "typed")
    assert info.key_kind == KeyKind.PRIMARY and info.key == ("id",)
    assert info.column("id").autoincrement is True
    assert reflection.unique_keys(t.connection, t.schema, "typed") == [["s"]]

    # The defaults and the autoincrement work: a row given only its unique value gets everything else.
    t.run(f"INSERT INTO {t.table('typed')} ({t.q('s')}) VALUES ('first')",  # noqa: S608 (quoted names)
          f"INSERT INTO {t.table('typed')} ({t.q('s')}) VALUES ('second')")  # noqa: S608
    first, second = rows(t, "typed")
    assert (first["id"], second["id"]) == (1, 2)
    assert first["i"] == 7 and first["big"] == -9000000000
    assert Decimal(str(first["d"])) == Decimal("3.50") and first["f"] == 1.5
    assert first["b"] in (True, 1)
    assert first["t"] == "it's 100% \\ fine"
    assert str(first["da"]) == "2024-01-02"
    assert str(first["ts"]).startswith("2024-01-02 03:04:05")
    json_value = first["j"] if isinstance(first["j"], dict) else __import__("json").loads(first["j"])
    assert json_value == {"a": [1, "x"]}
    assert first["ti"] is None and first["bin"] is None
    if t.kind == "postgresql":
        assert first["tz"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    # Unique holds.
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        t.run(f"INSERT INTO {t.table('typed')} ({t.q('s')}) VALUES ('first')")  # noqa: S608


def test_composite_primary_key(signed_in, target):  # noqa: F811
    t = target
    created_ok(signed_in, t, "pair", [
        {"name": "a", "type": "integer", "primary_key": True},
        {"name": "b", "type": "varchar", "size": "10", "primary_key": True},
        {"name": "note", "type": "text", "nullable": True},
    ])
    info = resolve_table(t.connection, t.schema, "pair")
    assert info.key_kind == KeyKind.PRIMARY and info.key == ("a", "b")
    assert [c.nullable for c in info.columns] == [False, False, True]
    assert info.column("a").autoincrement is False or t.kind == "sqlite"  # SQLite: an INTEGER key alone is a rowid
    t.run(f"INSERT INTO {t.table('pair')} (a, b) VALUES (1, 'x'), (1, 'y')")  # noqa: S608
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        t.run(f"INSERT INTO {t.table('pair')} (a, b) VALUES (1, 'x')")  # noqa: S608


def test_a_single_integer_key_without_autoincrement_is_not_numbered_by_postgresql_or_mysql(signed_in, target):  # noqa: F811
    t = target
    _, sql, _ = preview(signed_in, t, "plain", [{"name": "id", "type": "bigint", "primary_key": True}])
    assert "SERIAL" not in sql and "AUTO_INCREMENT" not in sql and "AUTOINCREMENT" not in sql


def test_foreign_key_on_delete_cascade_really_cascades(signed_in, target):  # noqa: F811
    t = target
    created_ok(signed_in, t, "parent", [{"name": "id", "type": "integer", "primary_key": True,
                                         "autoincrement": True},
                                        {"name": "name", "type": "varchar", "size": "40"}])
    created_ok(signed_in, t, "child", [
        {"name": "id", "type": "integer", "primary_key": True, "autoincrement": True},
        {"name": "parent_id", "type": "integer"},
        {"name": "other_id", "type": "integer", "nullable": True},
    ], keys=[
        {"column": "parent_id", "referred_table": "parent", "on_delete": "CASCADE", "on_update": "CASCADE"},
        {"column": "other_id", "referred_table": "parent", "referred_column": "id", "on_delete": "SET NULL"},
    ])
    keys = reflection.foreign_keys(t.connection, t.schema, "child")
    assert sorted((k["constrained_columns"], k["referred_table"], k["referred_columns"]) for k in keys) == [
        (["other_id"], "parent", ["id"]), (["parent_id"], "parent", ["id"])]
    event = events(Outcome.SUCCESS)[-1]
    assert {(k["columns"][0], k["on_delete"], k["on_update"]) for k in event.after["foreign_keys"]} == {
        ("parent_id", "CASCADE", "CASCADE"), ("other_id", "SET NULL", "NO ACTION")}

    t.run(f"INSERT INTO {t.table('parent')} (name) VALUES ('ann'), ('bob')",  # noqa: S608
          f"INSERT INTO {t.table('child')} (parent_id, other_id) VALUES (1, 2), (1, 1), (2, 1)")  # noqa: S608
    pragma = "PRAGMA foreign_keys = ON; " if t.kind == "sqlite" else ""  # Bastion's own connections turn it on
    t.run(f"{pragma}DELETE FROM {t.table('parent')} WHERE id = 1")  # noqa: S608
    left = rows(t, "child")
    assert [(r["parent_id"], r["other_id"]) for r in left] == [(2, None)]


def test_set_null_needs_a_nullable_column_and_the_column_must_exist(signed_in, target):  # noqa: F811
    t = target
    created_ok(signed_in, t, "parent", [{"name": "id", "type": "integer", "primary_key": True}])
    response = signed_in.post(editor_url(t), form_data("child", [{"name": "parent_id", "type": "integer"}], [
        {"column": "parent_id", "referred_table": "parent", "on_delete": "SET NULL"},
        {"column": "nope", "referred_table": "parent"}], preview="1"))
    assert response.status_code == 400
    problems = problems_in(response.content.decode())
    assert "SET NULL needs a column that allows NULL" in problems
    assert "the new table has no column “nope”" in problems
    assert tables(t) == ["parent"]


# --- identifiers (T02) ---------------------------------------------------------------------------------
HOSTILE_NAMES = ['x"; DROP TABLE t; --', "a`b", "[x]", "select", "it's", "Zürich ü 名前", "party 🎉", " spaced out "]


def test_T02_hostile_identifiers_are_literal_names_or_refused_with_a_message(signed_in, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('t')} (id INTEGER PRIMARY KEY)", f"CREATE TABLE {t.table('users')} (id INTEGER)")
    made = []
    for name in HOSTILE_NAMES:
        columns = [{"name": "id", "type": "integer", "primary_key": True}, {"name": name, "type": "text",
                                                                             "nullable": True}]
        response = create(signed_in, t, name, columns) if not (t.kind == "mysql" and (
            "🎉" in name or name.endswith(" "))) else signed_in.post(editor_url(t), form_data(name, columns,
                                                                                           preview="1"))
        body = response.content.decode()
        if t.kind == "mysql" and "🎉" in name:
            assert response.status_code == 400
            assert "Basic Multilingual Plane" in problems_in(body)
            continue
        if t.kind == "mysql" and name.endswith(" "):
            assert response.status_code == 400
            assert "cannot end with a space" in problems_in(body)
            continue
        assert response.status_code == 302, (name, problems_in(body))
        made.append(name)
        assert list(columns_of(t, name)) == ["id", name]
    assert sorted(tables(t)) == sorted(["t", "users", *made])
    assert len(events(Outcome.SUCCESS)) == len(made)


LIMITS = {
    # (works at the limit, refused one over, what the message says)
    "postgresql": [("x" * 63, "x" * 64, "63 bytes"), ("é" * 31 + "x", "é" * 32, "63 bytes")],
    "mysql": [("x" * 64, "x" * 65, "64 characters"), ("é" * 64, "é" * 65, "64 characters")],
    "sqlite": [],
}


def test_T02_name_length_limits_exactly_at_the_limit_work_one_over_is_refused(signed_in, target):  # noqa: F811
    t = target
    for at_limit, over, message in LIMITS[t.kind]:
        created_ok(signed_in, t, at_limit, [{"name": at_limit, "type": "integer"}])
        assert at_limit in tables(t) and list(columns_of(t, at_limit)) == [at_limit]
        for name, column in ((over, "c"), ("fine", over)):
            response = signed_in.post(editor_url(t), form_data(name, [{"name": column}], preview="1"))
            assert response.status_code == 400
            assert message in problems_in(response.content.decode())
            # A confirm with any token is refused the same way: nothing runs.
            response = signed_in.post(editor_url(t), form_data(name, [{"name": column}], confirm="1", token="x"))
            assert response.status_code == 400
    if t.kind == "sqlite":  # no limit of its own: long names work
        long_name = "ü" * 300
        created_ok(signed_in, t, long_name, [{"name": long_name}])
    expected = [limit for limit, _over, _message in LIMITS[t.kind]] or ["ü" * 300]
    assert sorted(tables(t)) == sorted(expected)


def test_T02_names_the_engine_would_reject(signed_in, target):  # noqa: F811
    t = target
    cases = [("a\x00b", "Null characters are not allowed")]  # Django's own check, before ours
    if t.kind == "sqlite":
        cases.append(("sqlite_mine", "SQLite keeps names"))
    if t.kind == "mysql":
        cases += [("trailing ", "cannot end with a space")]
    for name, message in cases:
        response = signed_in.post(editor_url(t), form_data(name, [{"name": "id"}], preview="1"))
        assert response.status_code == 400 and message in problems_in(response.content.decode()), name
        response = signed_in.post(editor_url(t), form_data("ok", [{"name": name}], preview="1"))
        if name == "sqlite_mine":  # a column may be called sqlite_...
            assert response.status_code == 200
        else:
            assert response.status_code == 400 and message in problems_in(response.content.decode()), name
    assert tables(t) == []


def test_T02_duplicate_columns_compare_as_the_engine_does(signed_in, target):  # noqa: F811
    t = target
    response = signed_in.post(editor_url(t), form_data("dup", [{"name": "Name"}, {"name": "name"}], preview="1"))
    if t.kind == "postgresql":  # quoted names are exact
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert "named twice" in problems_in(response.content.decode())
    response = signed_in.post(editor_url(t), form_data("dup", [{"name": "a"}, {"name": "a"}], preview="1"))
    assert response.status_code == 400 and "named twice" in problems_in(response.content.decode())
    assert tables(t) == []


def test_T02_a_default_is_a_literal_value_never_sql(signed_in, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('t')} (id INTEGER PRIMARY KEY)")
    hostile = "'); DROP TABLE t; -- \\' %s %% ? :x"
    created_ok(signed_in, t, "notes", [{"name": "id", "type": "integer", "primary_key": True},
                                       {"name": "body", "type": "varchar", "size": "100", "default": hostile}])
    t.run(f"INSERT INTO {t.table('notes')} (id) VALUES (1)")  # noqa: S608
    assert rows(t, "notes")[0]["body"] == hostile
    assert sorted(tables(t)) == ["notes", "t"]


def test_T02_a_taken_name_is_refused_before_anything_runs(signed_in, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('taken')} (id INTEGER)")
    name = "TAKEN" if t.kind == "sqlite" else "taken"  # SQLite: table names ignore ASCII case
    response = signed_in.post(editor_url(t), form_data(name, [{"name": "id"}], preview="1"))
    assert response.status_code == 400
    assert "A table or view named “taken” already exists." in problems_in(response.content.decode())


def test_T02_a_taken_name_the_user_cannot_see_is_not_confirmed(target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('secret')} (id INTEGER)")
    stranger = make_user(t, "stranger", [(Action.VIEW, "other")])
    problem = services.table_name_problem(stranger, t.connection, t.schema, "secret")
    assert problem == services.NAME_TAKEN and "exist" not in problem and "secret" not in problem
    assert services.table_name_problem(stranger, t.connection, t.schema, "free") is None


# --- preview and confirm (T37) -------------------------------------------------------------------------
def test_the_preview_shows_the_exact_ddl_and_creates_nothing(signed_in, target):  # noqa: F811
    t = target
    response, sql, token = preview(signed_in, t, "select", [{"name": "id", "primary_key": True},
                                                            {"name": "from", "type": "varchar", "size": "5"}])
    quoted = t.table("select")
    assert sql.startswith(f"CREATE TABLE {quoted} (") and t.q("from") in sql and "VARCHAR(5)" in sql
    assert token and 'name="confirm"' in response.content.decode()
    assert tables(t) == [] and events() == []
    # GET never changes anything, whatever it carries.
    response = signed_in.get(editor_url(t) + ("&" if t.schema else "?") + "confirm=1&name=select")
    assert response.status_code == 200 and tables(t) == []


def test_T37_a_confirm_whose_statement_differs_from_the_preview_is_refused(signed_in, target, client):  # noqa: F811
    t = target
    columns = [{"name": "id", "primary_key": True}]
    _, _, token = preview(signed_in, t, "good", columns)
    tampered = [
        form_data("evil", columns, confirm="1", token=token),  # another name
        form_data("good", [{"name": "id", "primary_key": True, "type": "bigint"}], confirm="1", token=token),
        form_data("good", [*columns, {"name": "extra"}], confirm="1", token=token),
        form_data("good", columns, confirm="1", token=token[:-2] + "xy"),  # a forged signature
        form_data("good", columns, confirm="1", token=""),
        form_data("good", columns, confirm="1"),
    ]
    for data in tampered:
        response = signed_in.post(editor_url(t), data)
        assert response.status_code == 409, problems_in(response.content.decode())
        assert "confirm" in problems_in(response.content.decode())
        assert tables(t) == []
    # Another user's preview of the same statement does not do either.
    other = client.__class__()
    other.force_login(builder(t, "other-builder"))
    _, _, their_token = preview(other, t, "good", columns)
    response = signed_in.post(editor_url(t), form_data("good", columns, confirm="1", token=their_token))
    assert response.status_code == 409 and tables(t) == []
    assert events() == []
    # The refusal shows the statement as it is now, with a token for it: confirming that one works.
    response = signed_in.post(editor_url(t), form_data("evil", columns, confirm="1", token=token))
    fresh = token_in(response.content.decode())
    response = signed_in.post(editor_url(t), form_data("evil", columns, confirm="1", token=fresh))
    assert response.status_code == 302 and tables(t) == ["evil"]


def test_an_engine_error_gives_a_safe_message_and_no_table(signed_in, target):  # noqa: F811
    t = target
    if t.kind == "sqlite":  # SQLite takes any default; an index of that name is a clash only the engine sees
        t.run(f"CREATE TABLE {t.table('other')} (x INTEGER)", f"CREATE INDEX {t.q('due')} ON {t.table('other')} (x)")
        before = ["other"]
    else:
        before = []
    columns = [{"name": "id", "primary_key": True, "autoincrement": True},
               {"name": "when", "type": "date", "default": "soon-ish"}]
    response = create(signed_in, t, "due", columns)
    body = response.content.decode()
    assert response.status_code == 400
    problem = problems_in(body)
    if t.kind == "sqlite":
        assert services.NAME_TAKEN in problem
    else:
        assert "The database refused the table:" in problem and ("date" in problem or "when" in problem)
    for leak in ("CREATE TABLE", "Traceback", "LINE 1", "[SQL", "sqlalchemy", "psycopg", "pymysql"):
        assert leak not in problem, leak
    assert tables(t) == before
    if t.kind == "postgresql":  # nothing half-created: not even the SERIAL column's sequence
        with t.admin.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM information_schema.sequences WHERE sequence_schema = :s"),
                                {"s": t.schema}).scalar() == 0
    assert events(Outcome.SUCCESS) == []
    failed = events(Outcome.FAILURE)
    assert len(failed) == 1 and failed[0].details["table"] == "due" and failed[0].after["ddl"].startswith("CREATE")


# --- audit (T33) ---------------------------------------------------------------------------------------
def test_T33_exactly_one_audit_event_per_creation_with_the_ddl_and_the_definition(signed_in, target):  # noqa: F811
    t = target
    columns = [{"name": "id", "type": "integer", "primary_key": True, "autoincrement": True},
               {"name": "code", "type": "varchar", "size": "8", "unique": True, "default": "none"},
               {"name": "note", "type": "text", "nullable": True}]
    _, sql, token = preview(signed_in, t, "audited", columns)
    assert events() == []
    response = signed_in.post(editor_url(t), form_data("audited", columns, confirm="1", token=token))
    assert response.status_code == 302
    [event] = events()
    assert event.outcome == Outcome.SUCCESS and event.actor == "builder"
    assert event.details == {"connection_id": t.connection.pk, "schema": t.schema, "table": "audited"}
    assert event.after["ddl"] == sql
    assert [c["name"] for c in event.after["columns"]] == ["id", "code", "note"]
    assert event.after["primary_key"] == ["id"] and event.after["unique"] == [["code"]]
    assert event.after["columns"][1]["default"] == "none" and event.after["columns"][2]["nullable"] is True
    # The same token cannot create a second table (the name is taken now); still one event.
    response = signed_in.post(editor_url(t), form_data("audited", columns, confirm="1", token=token))
    assert response.status_code == 400 and len(events()) == 1


def test_T33_T37_no_table_is_left_when_its_audit_event_cannot_be_written(signed_in, target, monkeypatch):  # noqa: F811
    t = target
    if t.kind == "mysql":
        pytest.skip("MySQL and MariaDB commit CREATE TABLE by themselves: the event is written right after it")
    real_record = services.record

    def audit_store_down(action: str, **kwargs: Any) -> Any:
        if action == CREATED and kwargs.get("outcome", Outcome.SUCCESS) == Outcome.SUCCESS:
            raise RuntimeError("the audit store is down")
        return real_record(action, **kwargs)

    monkeypatch.setattr(services, "record", audit_store_down)  # a fault injected in Bastion, the engine is real
    with pytest.raises(RuntimeError, match="audit store"):
        create(signed_in, t, "unaudited", [{"name": "id", "primary_key": True, "autoincrement": True}])
    assert tables(t) == []


# --- permissions (T20) ---------------------------------------------------------------------------------
def test_T20_without_alter_the_page_and_every_post_are_403_and_nothing_changes(client, target):  # noqa: F811
    t = target
    client.force_login(make_user(t, "reader", [(Action.VIEW, ""), (Action.INSERT, ""), (Action.QUERY_WRITE, "")]))
    columns = [{"name": "id", "primary_key": True}]
    assert client.get(editor_url(t)).status_code == 403
    for button in ({"preview": "1"}, {"confirm": "1", "token": "x"}, {"add_columns": "1"}):
        assert client.post(editor_url(t), form_data("nope", columns, **button)).status_code == 403
    assert tables(t) == [] and events() == []
    # Their database page offers no "New table".
    page = client.get(f"/db/{t.connection.pk}/").content.decode()
    assert "New table" not in page
    # Signed out: the login page, and nothing else happens.
    client.logout()
    response = client.post(editor_url(t), form_data("nope", columns, preview="1"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_T20_the_service_checks_the_alter_grant_itself(target):  # noqa: F811
    t = target
    reader = make_user(t, "reader", [(Action.VIEW, "")])
    spec = TableSpec(t.schema, "sneaky", (services.definition.ColumnSpec("id", "integer"),))
    with pytest.raises(services.NotPermitted):
        services.prepare(reader, t.connection, spec)
    with pytest.raises(services.NotPermitted):
        services.create_table(reader, None, t.connection, spec, "token")
    assert tables(t) == [] and events() == []


def test_T20_alter_on_the_connection_shows_the_button_and_opens_the_page(signed_in, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('present')} (id INTEGER)")  # the explorer lists a schema once it holds a table
    query = f"?s={t.schema}" if t.schema else ""
    page = signed_in.get(f"/db/{t.connection.pk}/{query}").content.decode()
    assert "New table" in page and f"/db/{t.connection.pk}/schema/new-table/" in page
    assert signed_in.get(editor_url(t)).status_code == 200


def test_T20_a_schema_that_does_not_exist_is_404(signed_in, target):  # noqa: F811
    t = target
    response = signed_in.get(f"/db/{t.connection.pk}/schema/new-table/?s=no_such_schema")
    assert response.status_code == 404


def test_T20_T31_a_foreign_key_may_only_refer_to_keys_the_user_can_see(client, target):  # noqa: F811
    t = target
    for name in ("open_parent", "secret_parent", "masked_parent"):
        t.run(f"CREATE TABLE {t.table(name)} (id INTEGER PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, "
              f"label VARCHAR(10))")
    user = make_user(t, "limited", [
        (Action.ALTER, ""), (Action.VIEW, "open_parent"), (Action.VIEW, "masked_parent"),
        (Action.VIEW, "masked_parent", "id", ColumnMode.MASKED, MaskRule.FIXED)])
    client.force_login(user)
    page = client.get(editor_url(t)).content.decode()
    assert "open_parent" in page and "secret_parent" not in page

    # Through the form: a table not offered is refused exactly like one that does not exist.
    columns = [{"name": "pid", "type": "integer"}]
    answers = []
    for name in ("secret_parent", "no_such_parent"):
        response = client.post(editor_url(t), form_data("child", columns, [{"column": "pid", "referred_table": name}],
                                                        preview="1"))
        assert response.status_code == 400
        answers.append(re.sub(r"\s+", " ", problems_in(response.content.decode()).replace(name, "NAME")))
    assert answers[0] == answers[1] and "not one of the available choices" in answers[0]

    # The service itself (whatever a view lets through): not there, masked key, not a key.
    def refusal(fk: ForeignKeySpec) -> str:
        spec = TableSpec(t.schema, "child", (services.definition.ColumnSpec("pid", "integer"),), (fk,))
        with pytest.raises(services.DefinitionRefused) as refused:
            services.vet(user, t.connection, spec)
        return " ".join(refused.value.problems)

    assert "no table “secret_parent” you can refer to" in refusal(ForeignKeySpec("pid", "secret_parent"))
    assert "no table “nowhere” you can refer to" in refusal(ForeignKeySpec("pid", "nowhere"))
    assert "no one-column primary key you can see" in refusal(ForeignKeySpec("pid", "masked_parent"))
    assert "“id” is not a one-column key" in refusal(ForeignKeySpec("pid", "masked_parent", "id"))
    assert "“label” is not a one-column key" in refusal(ForeignKeySpec("pid", "open_parent", "label"))
    assert tables(t) == sorted(["open_parent", "secret_parent", "masked_parent"])

    # What they can see works: the primary key, or a unique column they name.
    created_ok(client, t, "child", [{"name": "pid", "type": "integer"}, {"name": "pcode", "type": "varchar",
                                                                          "size": "10"}],
               [{"column": "pid", "referred_table": "open_parent"},
                {"column": "pcode", "referred_table": "masked_parent", "referred_column": "code"}])
    keys = reflection.foreign_keys(t.connection, t.schema, "child")
    assert sorted((k["referred_table"], k["referred_columns"][0]) for k in keys) == [
        ("masked_parent", "code"), ("open_parent", "id")]


# --- the form without JavaScript -----------------------------------------------------------------------
def test_more_rows_without_javascript_keep_what_was_typed_and_change_nothing(signed_in, target):  # noqa: F811
    t = target
    data = form_data("later", [{"name": "first", "type": "text", "default": "kept"}], add_columns="1")
    response = signed_in.post(editor_url(t), data)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="columns-TOTAL_FORMS" value="4"' in body and 'name="columns-3-name"' in body
    assert 'value="first"' in body and 'value="kept"' in body and 'value="later"' in body
    response = signed_in.post(editor_url(t), {**{k: v for k, v in data.items() if k != "add_columns"},
                                              "add_keys": "1"})
    assert 'name="keys-TOTAL_FORMS" value="3"' in response.content.decode()
    assert tables(t) == [] and events() == []


def test_removed_and_empty_rows_are_left_out(signed_in, target):  # noqa: F811
    t = target
    columns = [{"name": "id", "primary_key": True}, {"name": "gone", "type": "text", "DELETE": True}, {},
               {"name": "kept", "type": "text", "nullable": True}]
    _, sql, _ = preview(signed_in, t, "rows", columns)
    assert t.q("gone") not in sql and t.q("kept") in sql


@pytest.mark.parametrize(("column", "message"), [
    ({"name": "id", "primary_key": True, "nullable": True}, "cannot allow NULL"),
    ({"name": "id", "type": "text", "primary_key": True, "autoincrement": True}, "Only an integer"),
    ({"name": "id", "autoincrement": True}, "Only the primary key can autoincrement"),
    ({"name": "n", "default": "seven"}, "whole number"),
    ({"name": "b", "type": "boolean", "default": "maybe"}, "true or false"),
    ({"name": "j", "type": "json", "default": "{nope"}, "JSON value"),
    ({"name": "bin", "type": "binary", "default": "00"}, "cannot get a default"),
    ({"name": "s", "type": "varchar"}, "needs its length"),
    ({"name": "s", "type": "varchar", "size": "3", "default": "toolong"}, "longer than"),
    ({"name": "d", "type": "decimal", "size": "2,5"}, "scale"),
    ({"name": "i", "size": "4"}, "takes no size"),
    ({"name": "tz", "type": "timestamptz"}, "Select a valid choice"),  # not on SQLite
])
def test_column_rules_are_explained_before_anything_runs(column, message, client, sqlite_target):  # noqa: F811
    t = sqlite_target
    client.force_login(builder(t))
    response = client.post(editor_url(t), form_data("rules", [column], preview="1"))
    assert response.status_code == 400
    assert message in problems_in(response.content.decode())
    assert tables(t) == []


def test_autoincrement_on_a_big_integer(signed_in, target):  # noqa: F811
    t = target
    columns = [{"name": "id", "type": "bigint", "primary_key": True, "autoincrement": True}]
    if t.kind == "sqlite":
        response = signed_in.post(editor_url(t), form_data("big", columns, preview="1"))
        assert response.status_code == 400 and "choose integer" in problems_in(response.content.decode())
        return
    created_ok(signed_in, t, "big", [*columns, {"name": "x", "nullable": True}])
    t.run(f"INSERT INTO {t.table('big')} (x) VALUES (1)")  # noqa: S608
    assert rows(t, "big")[0]["id"] == 1
    assert reflection.columns(t.connection, t.schema, "big")[0]["type"].startswith("BIGINT")


def test_the_new_table_opens_in_the_explorer(signed_in, target):  # noqa: F811
    t = target
    response = created_ok(signed_in, t, "fresh table", [{"name": "id", "primary_key": True, "autoincrement": True},
                                                          {"name": "label", "type": "text", "nullable": True}])
    page = signed_in.get(response["Location"])
    assert page.status_code == 200 and "fresh table" in page.content.decode()
    with t.admin.connect() if t.admin else __import__("contextlib").nullcontext() as conn:
        if conn is not None:
            assert conn.execute(text(f"SELECT count(*) FROM {t.table('fresh table')}")).scalar() == 0  # noqa: S608


def test_T20_alter_on_one_schema_reaches_that_schema_only(client, postgresql_target):  # noqa: F811
    t = postgresql_target
    role = Group.objects.create(name="schema-builders")
    for action in (Action.ALTER, Action.VIEW):
        add_grant(None, None, role, action, t.connection, t.schema)
    user = get_user_model().objects.create_user(username="schema-builder", password=None)
    user.groups.add(role)
    client.force_login(user)
    created_ok(client, t, "inside", [{"name": "id", "primary_key": True}])
    assert tables(t) == ["inside"]
    assert client.get(f"/db/{t.connection.pk}/schema/new-table/").status_code == 403  # the default schema
    assert client.get(f"/db/{t.connection.pk}/schema/new-table/?s=public").status_code == 403


def test_T03_a_hostile_table_name_is_escaped_on_every_page_that_shows_it(signed_in, target):  # noqa: F811
    t = target
    payload = "<img src=x onerror=alert(1)>"
    columns = [{"name": "id", "primary_key": True}, {"name": "<script>alert(2)</script>", "type": "text",
                                                      "nullable": True, "default": "</pre><script>alert(3)</script>"}]
    response, _, _ = preview(signed_in, t, payload, columns)
    pages = [response.content.decode()]
    response = create(signed_in, t, payload, columns)
    assert response.status_code == 302
    pages.append(signed_in.get(response["Location"]).content.decode())  # the table page, with the message
    response = signed_in.post(editor_url(t), form_data(payload, columns, preview="1"))  # "already exists"
    pages.append(response.content.decode())
    for body in pages:
        assert payload not in body and "<script>alert" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body
