"""Exporting a table or a filtered view (issue 8, first slice): every format, on every engine, through HTTP.

Rows: T31 (hidden columns never exported, masked ones exported masked), T27 (CSV cells a
spreadsheet would run are neutralised), T33/T36 (one audit event per export with rows and
bytes; large exports flagged as egress), T20 (the export grant).
"""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from allauth.account.internal.userkit import user_id_to_str
from sqlalchemy import create_engine, text

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.audit.models import AuditEvent, Outcome
from bastion.transfer import export
from tests.conftest import STRONG_PASSWORD
from tests.engines import target  # noqa: F401
from tests.explorer_fixtures import granted_user

pytestmark = pytest.mark.django_db


def export_url(t: Any, table: str = "people", **params: str) -> str:
    query = {**({"s": t.schema} if t.schema else {}), "t": table, **params}
    return f"/db/{t.connection.pk}/export/?{urlencode(query)}"


def people(t: Any) -> None:
    t.run(f"CREATE TABLE {t.table('people')} (id INTEGER PRIMARY KEY, name VARCHAR(40), card VARCHAR(40), "
          f"secret VARCHAR(40), score DECIMAL(8,2), photo {'BYTEA' if t.kind == 'postgresql' else 'BLOB'})")
    rows = [(1, "=cmd|' /C calc'!A0", "4111111111111111", "s1", "1.50", b"\x00\x01"),
            (2, "it's \"quoted\"\\n 100%", "5500000000000004", "s2", None, None),
            (3, "Zürich 名前", None, "s3", "-2.25", b"\xff")]
    engine = t.admin or create_engine(f"sqlite:///{t.sqlite_path}")
    with engine.begin() as conn:
        for row in rows:
            conn.execute(text(f"INSERT INTO {t.table('people')} (id, name, card, secret, score, photo) "  # noqa: S608
                              "VALUES (:id, :name, :card, :secret, :score, :photo)"),
                         dict(zip(("id", "name", "card", "secret", "score", "photo"), row, strict=True)))
    if engine is not t.admin:
        engine.dispose()


def exporter(t: Any, username: str = "exporter", extra: tuple = ()) -> Any:
    return granted_user(t, username, [(Action.VIEW, ""), (Action.EXPORT, ""),
                                      (Action.VIEW, "people", "card", ColumnMode.MASKED, MaskRule.LAST4),
                                      (Action.VIEW, "people", "secret", ColumnMode.HIDDEN), *extra],
                        STRONG_PASSWORD)


def download(client: Any, url: str, fmt: str) -> Any:
    response = client.post(url, {"format": fmt})
    assert response.status_code == 200, response.content[:2000]
    return response


def body(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def events() -> Any:
    return AuditEvent.objects.filter(action=export.EXPORTED)


def test_T31_T27_T33_csv_leaves_hidden_columns_out_masks_and_neutralises(client, target):  # noqa: F811
    t = target
    people(t)
    client.force_login(exporter(t))
    page = client.get(export_url(t))
    assert page.status_code == 200 and "secret" not in page.content.decode()
    response = download(client, export_url(t), "csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.reader(io.StringIO(body(response))))
    assert rows[0] == ["id", "name", "card", "score", "photo"]  # no hidden column
    assert rows[1][1] == "'=cmd|' /C calc'!A0"  # inert in a spreadsheet
    assert rows[1][2] == "****1111" and rows[2][2] == "****0004" and rows[3][2] == ""  # masked, NULL stays empty
    assert rows[2][1] == 'it\'s "quoted"\\n 100%' and rows[3][1] == "Zürich 名前"
    assert len(rows) == 4
    [event] = events()
    assert event.outcome == Outcome.SUCCESS and event.details["rows"] == 3 and event.details["bytes"] > 0
    assert event.details["columns"] == ["id", "name", "card", "score", "photo"] and not event.details["egress"]
    assert "s1" not in json.dumps(event.details)


def test_jsonl_json_and_sql_formats_round_trip(client, target):  # noqa: F811
    t = target
    people(t)
    client.force_login(exporter(t))
    lines = [json.loads(line) for line in body(download(client, export_url(t), "jsonl")).splitlines()]
    assert [r["id"] for r in lines] == [1, 2, 3] and lines[1]["score"] is None and "secret" not in lines[0]
    assert lines[0]["photo"] == "AAE=" and lines[0]["card"] == "****1111"
    document = json.loads(body(download(client, export_url(t), "json")))
    assert document == lines
    sql = body(download(client, export_url(t), "sql"))
    statements = [s for s in sql.splitlines() if s]
    inserts = [s for s in statements if s.startswith("INSERT INTO")]
    assert len(inserts) == 3 and statements[-3:] == inserts
    if t.kind != "sqlite":  # how string literals are to be read comes first, as in pg_dump's files
        assert statements[0].startswith("SET ")
    # The statements load back: into a copy of the table with the exported columns, on the same engine.
    t.run(f"CREATE TABLE {t.table('copy')} (id INTEGER PRIMARY KEY, name VARCHAR(40), card VARCHAR(40), "
          f"score DECIMAL(8,2), photo {'BYTEA' if t.kind == 'postgresql' else 'BLOB'})")
    engine = t.admin or create_engine(f"sqlite:///{t.sqlite_path}")
    original = t.table("people")
    raw = engine.raw_connection()  # the file's text as a client runs it: no driver parameters
    try:
        cursor = raw.cursor()
        for statement in statements:
            cursor.execute(statement.replace(original, t.table("copy"), 1))
        raw.commit()
    finally:
        raw.close()
    with engine.connect() as conn:
        copied = conn.execute(text(f"SELECT id, name, card, score, photo FROM {t.table('copy')} "  # noqa: S608
                                   "ORDER BY id")).all()
    assert [r[1] for r in copied] == ["=cmd|' /C calc'!A0", 'it\'s "quoted"\\n 100%', "Zürich 名前"]
    assert [bytes(r[4]) if r[4] is not None else None for r in copied] == [b"\x00\x01", None, b"\xff"]
    assert [None if r[3] is None else Decimal(str(r[3])) for r in copied] == [Decimal("1.5"), None, Decimal("-2.25")]
    assert events().count() == 3


def test_a_filtered_sorted_view_exports_only_its_rows_in_its_order(client, target):  # noqa: F811
    t = target
    people(t)
    client.force_login(exporter(t))
    url = export_url(t, fc="id", fo="gt", fv="1", sort="id", dir="desc")
    lines = [json.loads(line) for line in body(download(client, url, "jsonl")).splitlines()]
    assert [r["id"] for r in lines] == [3, 2]
    assert events().get().details["filtered"] is True


def test_T20_export_needs_the_export_grant(client, target):  # noqa: F811
    t = target
    people(t)
    client.force_login(granted_user(t, "viewer", [(Action.VIEW, "")]))
    assert client.get(export_url(t)).status_code == 403
    assert client.post(export_url(t), {"format": "csv"}).status_code == 403
    assert not events().exists()


def test_T36_large_exports_ask_for_the_password_and_are_flagged(client, target, settings):  # noqa: F811
    t = target
    people(t)
    settings.EXPORT_REAUTH_ROWS = 2
    settings.EXPORT_EGRESS_BYTES = 10
    user = exporter(t)
    client.force_login(user)
    response = client.post(export_url(t), {"format": "csv"})
    if response.streaming:  # a regression: close the stream, or its open transaction blocks the clean-up
        response.close()
    assert response.status_code == 302 and "/reauthenticate/" in response["Location"]
    assert not events().exists()
    assert body(download(client, export_url(t, fc="id", fo="gt", fv="1"), "csv"))  # two rows: not above the limit
    everything = client.post(export_url(t, fc="id", fo="gt", fv="-1"), {"format": "csv"})  # a filter matching all
    assert everything.status_code == 302 and "/reauthenticate/" in everything["Location"]
    session = client.session
    session["account_authentication_methods"] = [{"method": "password", "at": time.time(), "reauthenticated": True}]
    session["account_authentication_methods_user"] = user_id_to_str(user)
    session.save()
    body(download(client, export_url(t), "csv"))
    first, second = events().order_by("id")
    assert first.details["egress"] and second.details["egress"]


def test_an_unknown_format_or_a_bad_filter_gets_a_message(client, target):  # noqa: F811
    t = target
    people(t)
    client.force_login(exporter(t))
    assert client.post(export_url(t), {"format": "xml"}).status_code == 400
    response = client.get(export_url(t, fc="secret", fo="eq", fv="s1"))  # a hidden column reads as unknown
    assert response.status_code == 400
    assert not events().exists()


def test_T33_a_client_that_goes_away_stops_the_export_and_it_is_audited_as_such(client, target):  # noqa: F811
    t = target
    t.run(f"CREATE TABLE {t.table('people')} (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    engine = t.admin or create_engine(f"sqlite:///{t.sqlite_path}")
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {t.table('people')} (id, name) VALUES (:id, :name)"),  # noqa: S608
                     [{"id": n, "name": f"row {n}"} for n in range(1, 5001)])
    client.force_login(granted_user(t, "leaver", [(Action.VIEW, ""), (Action.EXPORT, "")]))
    response = download(client, export_url(t, fc="id", fo="gt", fv="0"), "csv")
    chunks = iter(response.streaming_content)
    next(chunks), next(chunks)  # the header and the first batch, then the client hangs up
    response.close()
    [event] = events()
    assert event.outcome == Outcome.FAILURE and event.details["message"] == "the client went away before the end"
    assert 0 < event.details["rows"] < 5000


@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql", "sqlite"])
def test_T02_sql_statements_quote_hostile_names_and_values_for_their_engine(dialect_name):
    from sqlalchemy import MetaData, Table
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from bastion.transfer import formats

    dialect = {"postgresql": postgresql.dialect(), "mysql": mysql.dialect(), "sqlite": sqlite.dialect()}[dialect_name]
    table = Table('x"; DROP TABLE t; --', MetaData(), quote=True)
    out = b"".join(formats.sql_chunks(table, dialect)(["a`b", "100% it's"], iter([[("it's 50%", None)]])))
    text_ = out.decode()
    quote = "`" if dialect_name == "mysql" else '"'
    text_ = text_.removeprefix(formats.sql_header(dialect))
    assert text_.startswith("INSERT INTO " + dialect.identifier_preparer.quote('x"; DROP TABLE t; --'))
    assert f"{quote}100% it's{quote}" in text_ and "'it''s 50%'" in text_ and text_.endswith(", NULL);\n")
    assert "%%" not in text_
