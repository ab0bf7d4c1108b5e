"""Importing a file as a new table (issue 8): the table proposed from the file, created through the schema
editor, filled by a job; and the round trip export → import into a new table on every engine.

Rows: T20 (import and alter on the schema), T33 (the table's creation and the import audited), T02.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import text

from bastion.access.models import Action
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections.engines import get_engine
from bastion.explorer.schema import resolve_table
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.worker import run_pending
from tests.conftest import STRONG_PASSWORD
from tests.engines import target  # noqa: F401
from tests.explorer_fixtures import granted_user
from tests.test_transfer_import import form_fields, preview_url

pytestmark = pytest.mark.django_db


def creator(t: Any, username: str = "creator", grants: tuple = (Action.ALTER, Action.IMPORT)) -> Any:
    return granted_user(t, username, [(Action.VIEW, ""), (Action.INSERT, ""), *((g, "") for g in grants)],
                        STRONG_PASSWORD)


def schema_query(where: Any, **extra: str) -> str:
    return urlencode({**({"s": where.schema} if where.schema else {}), **extra})


def upload_new(client: Any, t: Any, content: bytes, name: str) -> Any:
    handle = io.BytesIO(content)
    handle.name = name
    return client.post(f"/db/{t.connection.pk}/import/new/?{schema_query(t)}", {"file": handle})


def start_new(client: Any, url: str, **changes: str) -> Any:
    page = client.get(url)
    assert page.status_code == 200, page.content[:3000]
    form = page.context["form"]
    data = {**{key: form.data[key] for key in form.data}, **form_fields(page, ("source_form", "options_form")),
            "action": "start", **changes}
    return client.post(url, {k: v for k, v in data.items() if v is not None})


def finished_job(response: Any) -> Job:
    assert response.status_code == 302, response.content[:4000]
    job = Job.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[-1])
    run_pending()
    job.refresh_from_db()
    return job


def select(t: Any, sql: str) -> list[tuple]:
    with get_engine(t.connection).connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def source_table(t: Any) -> None:
    t.run(f"CREATE TABLE {t.table('src')} (id INTEGER PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), "
          f"born DATE, note VARCHAR(40))",
          f"INSERT INTO {t.table('src')} VALUES (1, 'Ada', 12.50, '1815-12-10', NULL), "  # noqa: S608
          f"(2, '=cmd|'' /C calc''!A0', NULL, NULL, 'x'), (3, 'Zürich 名前', -0.25, '2001-01-01', '-dash')")


def export_csv(client: Any, t: Any) -> bytes:
    response = client.post(f"/db/{t.connection.pk}/export/?{schema_query(t, t='src')}", {"format": "csv"})
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    response.close()
    return body


def test_export_then_import_as_a_new_table_gives_the_same_rows_and_types(client, target):  # noqa: F811
    source_table(target)
    user = creator(target, grants=(Action.ALTER, Action.IMPORT, Action.EXPORT))
    client.force_login(user)
    exported = export_csv(client, target)
    url = preview_url(upload_new(client, target, exported, "src export.csv"))
    page = client.get(url)
    proposed = page.context["form"].data
    assert proposed["name"] == "src_export"
    assert [proposed[f"columns-{i}-type"] for i in range(5)] == ["integer", "text", "decimal", "date", "text"]
    assert "columns-0-primary_key" in proposed  # an "id" of whole numbers, no empty cell
    job = finished_job(start_new(client, url, name="copy", restore_formulas="on"))
    assert job.status == JobStatus.SUCCEEDED, job.message
    original = select(target, f"SELECT id, name, price, born, note FROM {target.table('src')} ORDER BY id")  # noqa: S608
    copied = select(target, f"SELECT id, name, price, born, note FROM {target.table('copy')} ORDER BY id")  # noqa: S608
    assert [(r[0], r[1], Decimal(str(r[2])) if r[2] is not None else None, str(r[3]) if r[3] else None, r[4])
            for r in copied] == \
        [(r[0], r[1], Decimal(str(r[2])) if r[2] is not None else None, str(r[3]) if r[3] else None, r[4])
         for r in original]
    kinds = [c.kind for c in resolve_table(target.connection, target.schema, "copy").columns]
    assert kinds == ["integer", "text", "decimal", "date", "text"]
    created = AuditEvent.objects.get(action="schema.table_created")
    assert created.details["table"] == "copy"
    assert AuditEvent.objects.get(action="import.table").outcome == Outcome.SUCCESS


def test_json_lines_round_trip_keeps_empty_text_apart_from_null(client, target):  # noqa: F811
    client.force_login(creator(target))
    lines = '{"id": 1, "t": ""}\n{"id": 2, "t": null}\n{"id": 3, "t": "x"}\n'
    url = preview_url(upload_new(client, target, lines.encode(), "t.jsonl"))
    job = finished_job(start_new(client, url, name="kept", empty_as_null=None))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert select(target, f"SELECT id, t FROM {target.table('kept')} ORDER BY id") == [  # noqa: S608
        (1, ""), (2, None), (3, "x")]


def test_a_failed_import_leaves_the_new_table_empty_and_says_so(client, target):  # noqa: F811
    client.force_login(creator(target))
    url = preview_url(upload_new(client, target, b"id,n\n1,1\n1,2\n", "dup.csv"))
    job = finished_job(start_new(client, url, name="dups"))
    assert job.status == JobStatus.FAILED and job.error["row"] == 2
    assert select(target, f"SELECT COUNT(*) FROM {target.table('dups')}") == [(0,)]  # noqa: S608


def test_T20_a_new_table_needs_alter_and_import_on_the_schema(client, target):  # noqa: F811
    client.force_login(creator(target, "no-alter", grants=(Action.IMPORT,)))
    assert client.get(f"/db/{target.connection.pk}/import/new/?{schema_query(target)}").status_code == 403
    client.force_login(creator(target, "no-import", grants=(Action.ALTER,)))
    assert client.get(f"/db/{target.connection.pk}/import/new/?{schema_query(target)}").status_code == 403


def test_a_header_that_cannot_be_a_name_is_shown_and_nothing_is_created(client, target):  # noqa: F811
    client.force_login(creator(target))
    url = preview_url(upload_new(client, target, b"id,n\n1,1\n", "bad.csv"))
    response = start_new(client, url, name="")
    assert response.status_code == 400
    assert not Job.objects.exists() and not AuditEvent.objects.filter(action="schema.table_created").exists()
