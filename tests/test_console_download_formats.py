"""Console downloads as JSON Lines and SQL INSERT statements (issue 8), on SQLite, PostgreSQL and MariaDB.

The SQL file of a one-table query loads back into a fresh copy of that table, hostile names and values
and all, run as a client runs a file (its SET header included, no driver parameters); other queries
write into "query_result". Every download keeps its one audit event, which names the format (T33).
"""

from __future__ import annotations

import json
import re
import sqlite3
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from pymysql.constants import CLIENT
from sqlalchemy import create_engine, text

from bastion.access.models import Action
from bastion.audit.models import AuditEvent
from bastion.console.download import FORMATS
from bastion.console.forms import ConsoleForm
from bastion.transfer import formats
from tests.engines import HOSTILE, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user, people_table, superuser

pytestmark = pytest.mark.django_db

# Values that break naive quoting: quotes, backslashes (MySQL reads them as escapes), what format-style
# drivers take for parameters, a line feed, a statement's end, and text beyond the BMP. No NUL (tested in
# tests/test_transfer_export_safety.py).
HOSTILE_VALUES = ["it's \"quoted\"", "C:\\temp\\new\\' ; DROP TABLE t; --", "100% %s %(x)s", "two\nlines;",
                  "Zürich 名前 🙂", "\\", "'"]


def console_url(t: Any, page: str = "") -> str:
    return f"/db/{t.connection.pk}/console/{page}"


def download(client: Any, t: Any, sql: str, fmt: str, statement: int = 1) -> Any:
    return client.post(console_url(t, "download/"), {"sql": sql, "download": f"{statement}:{fmt}"})


def content(response: Any) -> str:
    """The whole streamed body; the response closed (an unread one would keep its transaction open)."""
    assert response.status_code == 200, response.content[:3000]
    try:
        return b"".join(response.streaming_content).decode()
    finally:
        response.close()


def last_download() -> AuditEvent:
    return AuditEvent.objects.filter(action="console.download").order_by("-seq").first()


def signed(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def engine_of(t: Any) -> Any:
    return t.admin or create_engine(f"sqlite:///{t.sqlite_path}")


def select_all(t: Any, table_sql: str, order: str) -> list[tuple]:
    engine = engine_of(t)
    try:
        with engine.connect() as conn:
            found = conn.execute(text(f"SELECT * FROM {table_sql} ORDER BY {order}")).all()
    finally:
        if engine is not t.admin:
            engine.dispose()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in found]


def load(t: Any, sql: str) -> None:
    """Run a downloaded .sql file whole, as a client runs it: several statements in one text, no parameters."""
    if t.kind == "sqlite":
        with sqlite3.connect(t.sqlite_path) as raw:
            raw.executescript(sql)
        raw.close()
        return
    if t.kind == "postgresql":
        raw = t.admin.raw_connection()
        try:
            raw.cursor().execute(sql)  # psycopg: no parameters, so the simple protocol runs every statement
            raw.commit()
        finally:
            raw.close()
        return
    engine = create_engine(t.admin.url, connect_args={"client_flag": CLIENT.MULTI_STATEMENTS})
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        while cursor.nextset():
            pass
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


# --- JSON Lines --------------------------------------------------------------------------------------
def test_jsonl_lines_parse_with_types_nulls_and_unique_keys(client, target):  # noqa: F811
    t = target
    people_table(t)
    sql = f"SELECT id, name, qty, NULL AS absent, name FROM {t.table('people')} ORDER BY id"
    client = signed(client, superuser())
    response = download(client, t, sql, "jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith("attachment;") and ".jsonl" in response["Content-Disposition"]
    body = content(response)
    assert body.endswith("\n")
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines == [{"id": 1, "name": "ann", "qty": 1, "absent": None, "name_2": "ann"},
                     {"id": 2, "name": "bob", "qty": 2, "absent": None, "name_2": "bob"},
                     {"id": 3, "name": "cid", "qty": 3, "absent": None, "name_2": "cid"}]
    event = last_download()
    assert event.outcome == "success" and event.details["format"] == "jsonl" and event.details["rows"] == 3
    assert event.details["bytes"] == len(body.encode())
    assert json.loads(content(download(client, t, sql, "json"))) == lines  # the same objects as JSON's array


def test_jsonl_of_an_empty_result_is_an_empty_file(client, target):  # noqa: F811
    t = target
    people_table(t)
    body = content(download(signed(client, superuser()), t, f"SELECT id FROM {t.table('people')} WHERE id < 0",
                            "jsonl"))
    assert body == ""
    assert last_download().details["rows"] == 0


# --- SQL INSERT statements ---------------------------------------------------------------------------
COLUMNS = ["id", HOSTILE[1], HOSTILE[2], HOSTILE[3], "pct %s", "amount", "bin"]


def create_hostile_table(t: Any, name: str) -> None:
    """A table whose name and column names break naive quoting (empty)."""
    binary = "BYTEA" if t.kind == "postgresql" else "BLOB"
    q = [t.q(c) for c in COLUMNS]
    t.run(f"CREATE TABLE {t.table(name)} ({q[0]} INTEGER PRIMARY KEY, {q[1]} TEXT, {q[2]} TEXT, {q[3]} VARCHAR(100), "
          f"{q[4]} TEXT, {q[5]} DECIMAL(12, 3), {q[6]} {binary})")


def hostile_table(t: Any) -> str:
    """That table, filled with hostile values and NULLs."""
    name = HOSTILE[0]
    create_hostile_table(t, name)
    statement = text(f"INSERT INTO {t.table(name)} VALUES (:id, :a, :b, :c, :d, :amount, :bin)")
    engine = engine_of(t)
    with engine.begin() as conn:
        for n, value in enumerate(HOSTILE_VALUES, start=1):
            conn.execute(statement, {"id": n, "a": value, "b": value[::-1], "c": None if n % 2 else value,
                                     "d": value, "amount": Decimal(f"-{n}.125"), "bin": value.encode()})
        conn.execute(statement, {"id": 99, "a": None, "b": None, "c": None, "d": None, "amount": None, "bin": None})
    if engine is not t.admin:
        engine.dispose()
    return name


def test_sql_of_a_one_table_query_loads_back_into_a_fresh_copy(client, target):  # noqa: F811
    t = target
    name = hostile_table(t)
    before = select_all(t, t.table(name), t.q("id"))
    assert len(before) == len(HOSTILE_VALUES) + 1
    sql = f"SELECT * FROM {t.table(name)} ORDER BY {t.q('id')}"
    response = download(signed(client, superuser()), t, sql, "sql")
    assert response["Content-Type"] == "application/sql; charset=utf-8"
    assert ".sql" in response["Content-Disposition"]
    body = content(response)
    connection_dialect = create_engine("sqlite://").dialect if t.kind == "sqlite" else t.admin.dialect
    header = formats.sql_header(connection_dialect)
    assert body.startswith(header) and (header.startswith("SET ") or t.kind == "sqlite")
    # Named after the table it read, schema and all, quoted by the dialect.
    assert f"INSERT INTO {t.table(name)} (" in body
    assert "query_result" not in body
    event = last_download()
    assert event.outcome == "success" and event.details["format"] == "sql"
    assert event.details["rows"] == len(before) and event.details["bytes"] == len(body.encode())
    # A fresh copy of the table: dropped and made again, empty; then the file is run into it.
    t.run(f"DROP TABLE {t.table(name)}")
    create_hostile_table(t, name)
    assert select_all(t, t.table(name), t.q("id")) == []
    load(t, body)
    assert select_all(t, t.table(name), t.q("id")) == before


def test_sql_of_a_join_writes_into_query_result(client, target):  # noqa: F811
    t = target
    people_table(t)
    sql = (f"SELECT p.id, p.name, pets.id AS pet FROM {t.table('people')} p "
           f"JOIN {t.table('pets')} pets ON pets.owner_id = p.id ORDER BY p.id")
    body = content(download(signed(client, superuser()), t, sql, "sql"))
    inserts = [line for line in body.splitlines() if line.startswith("INSERT")]
    assert inserts == [f"INSERT INTO {t.q('query_result')} ({t.q('id')}, {t.q('name')}, {t.q('pet')}) "
                       "VALUES (1, 'ann', 1);"]
    assert last_download().details["format"] == "sql"
    # It loads into a table of that name made for it.
    t.run(f"CREATE TABLE {t.q('query_result')} (id INTEGER, name VARCHAR(40), pet INTEGER)")
    try:
        load(t, body)
        assert select_all(t, t.q("query_result"), "id") == [(1, "ann", 1)]
    finally:
        t.run(f"DROP TABLE {t.q('query_result')}")


@pytest.mark.parametrize("query", ["SELECT 1 AS one", "SELECT id AS one FROM {people} WHERE id = 1 "
                                   "UNION ALL SELECT id FROM {pets}"])
def test_sql_of_no_table_or_several_tables_writes_into_query_result(client, target, query):  # noqa: F811
    t = target
    people_table(t)
    sql = query.format(people=t.table("people"), pets=t.table("pets"))
    body = content(download(signed(client, superuser()), t, sql, "sql"))
    assert f"INSERT INTO {t.q('query_result')} ({t.q('one')}) VALUES (1);" in body


def test_sql_of_a_view_writes_into_query_result(client, target):  # noqa: F811
    t = target
    people_table(t)
    t.run(f"CREATE VIEW {t.table('names')} AS SELECT id, name FROM {t.table('people')}")
    body = content(download(signed(client, superuser()), t,
                            f"SELECT id, name FROM {t.table('names')} WHERE id = 2", "sql"))
    assert f"INSERT INTO {t.q('query_result')} ({t.q('id')}, {t.q('name')}) VALUES (2, 'bob');" in body


def test_sql_column_names_are_made_unique_as_json_keys_are(client, target):  # noqa: F811
    t = target
    people_table(t)
    sql = f"SELECT id, name, id FROM {t.table('people')} WHERE id = 1"
    body = content(download(signed(client, superuser()), t, sql, "sql"))
    assert f"({t.q('id')}, {t.q('name')}, {t.q('id_2')}) VALUES (1, 'ann', 1);" in body
    event = last_download()
    assert event.outcome == "success" and event.details["rows"] == 1


def test_sql_column_names_stay_unique_when_a_suffix_is_taken(client, sqlite_target):  # noqa: F811
    t = sqlite_target
    people_table(t)
    sql = f"SELECT id, id, id AS id_2 FROM {t.table('people')} WHERE id = 1"
    body = content(download(signed(client, superuser()), t, sql, "sql"))
    assert f"({t.q('id')}, {t.q('id_3')}, {t.q('id_2')}) VALUES (1, 1, 1);" in body  # a name the result has stays


def test_sql_blank_column_names_get_a_name(client, target):  # noqa: F811
    """MariaDB names the column of SELECT '' "" (SQLite too with AS ""): an INSERT needs a name."""
    t = target
    sql = {"mysql": "SELECT '', 2 AS b", "sqlite": 'SELECT \'\' AS "", 2 AS b'}.get(t.kind)
    if sql is None:
        pytest.skip("PostgreSQL has no blank column names")
    body = content(download(signed(client, superuser()), t, sql, "sql"))
    assert f"({t.q('column_1')}, {t.q('b')}) VALUES ('', 2);" in body
    assert last_download().outcome == "success"


# --- refusals and limits stay as they were -------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "sql"])
def test_new_formats_need_the_export_grant_and_the_refusal_is_audited(client, target, fmt):  # noqa: F811
    t = target
    people_table(t)
    reader = granted_user(t, "reader", [(Action.QUERY, ""), (Action.VIEW, "people")])
    response = download(signed(client, reader), t, f"SELECT id FROM {t.table('people')}", fmt)
    assert response.status_code == 403 and b"export grant" in response.content
    assert last_download().outcome == "denied"


def test_an_unknown_format_is_a_bad_request(client, target):  # noqa: F811
    t = target
    people_table(t)
    response = download(signed(client, superuser()), t, f"SELECT id FROM {t.table('people')}", "xml")
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="console.download").exists()


def test_the_download_buttons_parse():
    assert set(FORMATS) == {"csv", "jsonl", "json", "sql"}
    for fmt in FORMATS:
        assert ConsoleForm({"sql": "SELECT 1", "download": f"3:{fmt}"}).download() == (3, fmt)
    for bad in ("3:xml", "3:json ", "x:csv", "3:SQL", "3:jsonlines"):
        assert ConsoleForm({"sql": "SELECT 1", "download": bad}).download() is None


# --- the buttons in the results --------------------------------------------------------------------------
def test_each_result_has_one_download_group_with_the_four_formats(client, target):  # noqa: F811
    t = target
    people_table(t)
    response = signed(client, superuser()).post(console_url(t), {
        "sql": f"SELECT id FROM {t.table('people')};\nSELECT 2 AS two", "run": "1"})
    body = response.content.decode()
    assert response.status_code == 200, body
    groups = re.findall(r'<div class="download-as" role="group"[^>]*>(.*?)</div>', body, re.S)
    assert len(groups) == 2
    for index, group in enumerate(groups, start=1):
        buttons = re.findall(r"<button ([^>]*)>(.*?)</button>", group, re.S)
        assert [re.search(r'value="([^"]*)"', attrs).group(1) for attrs, _ in buttons] == [
            f"{index}:csv", f"{index}:jsonl", f"{index}:json", f"{index}:sql"]
        assert [unescape(label).strip() for _, label in buttons] == ["CSV", "JSON Lines", "JSON", "SQL INSERT"]
        # Plain form buttons: they work without JavaScript.
        assert all('type="submit"' in attrs and 'formaction="' in attrs and 'form="console-form"' in attrs
                   for attrs, _ in buttons)
    assert " style=" not in body and " onclick=" not in body
