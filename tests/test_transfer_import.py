"""Importing a file into a table (issue 8), through HTTP and the real job queue, on every engine.

Rows: T24 (uploads in tempfile-made files in the data directory, kept under a random name), T28 (upload
size and row limits), T33 (upload, submission and import audited with rows and bytes), T20 (the import
grant, insert on every mapped column, update for "update existing rows"), T02 (hostile names and values).
An import is all or nothing: a refused row, a cancel or a limit leaves the table exactly as it was.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django import forms
from django.contrib.auth import get_user_model
from sqlalchemy import text

from bastion.access.models import Action, ColumnMode
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections.engines import get_engine
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.runners import JobCancelled, Progress
from bastion.jobs.worker import run_pending
from bastion.transfer import importer
from tests.conftest import STRONG_PASSWORD
from tests.engines import HOSTILE, target  # noqa: F401
from tests.explorer_fixtures import granted_user

pytestmark = pytest.mark.django_db

NAME = HOSTILE[0]  # x"; DROP TABLE t; --


def people(t: Any, table: str = "people") -> None:
    t.run(f"CREATE TABLE {t.table(table)} (id INTEGER PRIMARY KEY, {t.q(NAME)} VARCHAR(60), "
          f"score DECIMAL(8,2), born DATE, secret VARCHAR(20))")


def rows(t: Any, table: str = "people") -> list[tuple]:
    with get_engine(t.connection).connect() as conn:
        result = conn.execute(text(f"SELECT id, {t.q(NAME)}, score, born FROM {t.table(table)} ORDER BY id"))  # noqa: S608
        return [(key, name, None if score is None else Decimal(str(score)), None if born is None else str(born))
                for key, name, score, born in result]


def importer_user(t: Any, username: str = "importer", extra: tuple = ()) -> Any:
    return granted_user(t, username, [(Action.VIEW, ""), (Action.INSERT, ""), (Action.IMPORT, ""), *extra],
                        STRONG_PASSWORD)


def table_query(t: Any, table: str = "people", **extra: str) -> str:
    return urlencode({**({"s": t.schema} if t.schema else {}), "t": table, **extra})


def upload(client: Any, t: Any, content: bytes, name: str = "people.csv", table: str = "people") -> Any:
    url = f"/db/{t.connection.pk}/import/?{table_query(t, table)}"
    handle = io.BytesIO(content)
    handle.name = name
    return client.post(url, {"file": handle})


def preview_url(response: Any) -> str:
    assert response.status_code == 302, response.content[:3000]
    return response["Location"]


def form_fields(response: Any, forms_named: tuple[str, ...] = ("source_form", "mapping_form")) -> dict[str, str]:
    """The preview page's form fields as it sets them (the way a browser would post them back)."""
    context = response.context
    data: dict[str, str] = {}
    for form in (context[name] for name in forms_named):
        for field in form:
            value = field.value()
            if isinstance(field.field, forms.BooleanField):
                if value:
                    data[field.html_name] = "on"
            elif value is not None:
                data[field.html_name] = str(value)
    return data


def start(client: Any, url: str, **changes: str) -> Any:
    page = client.get(url)
    assert page.status_code == 200, page.content[:3000]
    data = {**form_fields(page), "action": "start", **changes}
    return client.post(url, data)


def job_of(response: Any) -> Job:
    assert response.status_code == 302, response.content[:3000]
    job_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    return Job.objects.get(pk=job_id)


def run(job: Job) -> Job:
    run_pending()
    job.refresh_from_db()
    return job


CSV = (f'id,"{NAME.replace(chr(34), chr(34) * 2)}",score,born\n'
       "1,Ada,1.50,1815-12-10\n"
       "2,\"it's \"\"quoted\"\" \\ %s\",,\n"
       "3,Zürich 名前,-2.25,2001-01-01\n").encode()


def test_T33_a_csv_is_uploaded_previewed_mapped_and_imported_as_one_job(client, target):  # noqa: F811
    people(target)
    client.force_login(importer_user(target))
    url = preview_url(upload(client, target, CSV))
    page = client.get(url)
    assert page.status_code == 200
    assert [name for name, _ in page.context["reading"].file_columns] == ["id", NAME, "score", "born"]
    assert page.context["mapping_form"][f"map_{1}"].value() == NAME  # matched by name
    job = run(job_of(start(client, url)))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.rows_done == 3 and "Imported 3 rows" in job.message
    assert rows(target) == [(1, "Ada", Decimal("1.50"), "1815-12-10"), (2, "it's \"quoted\" \\ %s", None, None),
                            (3, "Zürich 名前", Decimal("-2.25"), "2001-01-01")]
    actions = list(AuditEvent.objects.filter(action__startswith="import.").order_by("seq")
                   .values_list("action", "outcome"))
    assert actions == [("import.upload", Outcome.SUCCESS), ("import.submit", Outcome.SUCCESS),
                       ("import.table", Outcome.SUCCESS)]
    event = AuditEvent.objects.get(action=importer.IMPORTED)
    assert event.details["rows"] == 3 and event.details["bytes"] == len(CSV)
    assert event.details["columns"] == ["id", NAME, "score", "born"]
    assert not Job.objects.get(pk=job.pk).file_name or not (job.file_name and _exists(job))


def _exists(job: Job) -> bool:
    from bastion.jobs.services import job_path

    return job_path(job).exists()


def test_a_refused_row_in_the_middle_of_100k_rows_leaves_the_table_untouched(client, target):  # noqa: F811
    people(target)
    target.run(f"INSERT INTO {target.table('people')} (id, {target.q(NAME)}) VALUES (0, 'before')")  # noqa: S608
    body = io.StringIO()
    body.write("id,name,score\n")
    for i in range(1, 100_001):
        body.write(f"{i},n{i},{'oops' if i == 54_321 else '1.25'}\n")
    client.force_login(importer_user(target))
    url = preview_url(upload(client, target, body.getvalue().encode()))
    job = run(job_of(start(client, url, map_1=NAME)))
    assert job.status == JobStatus.FAILED
    assert job.error["row"] == 54_321 and job.error["column"] == "score"
    assert "number" in job.error["reason"]
    assert rows(target) == [(0, "before", None, None)]
    event = AuditEvent.objects.get(action=importer.IMPORTED)
    assert event.outcome == Outcome.FAILURE and event.details["row"] == 54_321


def test_a_row_the_database_refuses_is_named_and_nothing_is_written(client, target):  # noqa: F811
    people(target)
    target.run(f"INSERT INTO {target.table('people')} (id, {target.q(NAME)}) VALUES (2, 'there')")  # noqa: S608
    client.force_login(importer_user(target))
    url = preview_url(upload(client, target, b"id,score\n1,1\n2,2\n3,3\n"))
    job = run(job_of(start(client, url)))
    assert job.status == JobStatus.FAILED
    assert job.error["row"] == 2, job.error
    assert rows(target) == [(2, "there", None, None)]


def test_skip_and_update_existing_rows(client, target):  # noqa: F811
    people(target)
    target.run(f"INSERT INTO {target.table('people')} (id, {target.q(NAME)}, score) VALUES (1, 'old', 1)")  # noqa: S608
    user = importer_user(target, extra=((Action.UPDATE, ""),))
    client.force_login(user)
    content = f"id,{NAME.replace(chr(34), '')}\n1,new\n2,added\n".encode()
    job = run(job_of(start(client, preview_url(upload(client, target, content)), map_1=NAME, conflict="skip")))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert rows(target) == [(1, "old", Decimal("1.00"), None), (2, "added", None, None)]
    content = f"id,{NAME.replace(chr(34), '')}\n1,newer\n3,third\n".encode()
    job = run(job_of(start(client, preview_url(upload(client, target, content)), map_1=NAME, conflict="update")))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert rows(target) == [(1, "newer", Decimal("1.00"), None), (2, "added", None, None), (3, "third", None, None)]


def test_cancel_while_running_leaves_the_table_as_it_was(client, target):  # noqa: F811
    people(target)
    client.force_login(importer_user(target))
    body = "id\n" + "".join(f"{i}\n" for i in range(1, 20_001))
    job = job_of(start(client, preview_url(upload(client, target, body.encode()))))

    class StopAfterTwoBatches(Progress):
        checks = 0

        def should_stop(self) -> bool:
            self.checks += 1
            return self.checks > 2

    with pytest.raises(JobCancelled):
        importer.run(job, StopAfterTwoBatches(job))
    assert rows(target) == []
    assert AuditEvent.objects.get(action=importer.IMPORTED).details["message"].startswith("cancelled")


def test_json_and_json_lines_files_import_exact_values(client, target):  # noqa: F811
    people(target)
    client.force_login(importer_user(target))
    records = [{"id": 1, "score": 0.1, "born": None, "x": "a"}, {"id": 2, "score": 12.5, "x": "b"}]
    job = run(job_of(start(client, preview_url(upload(client, target, json.dumps(records).encode(), "p.json")),
                           map_3=NAME)))
    assert job.status == JobStatus.SUCCEEDED, job.message
    lines = '{"id": 3, "score": "7.77"}\n\n{"id": 4, "score": null}\n'
    job = run(job_of(start(client, preview_url(upload(client, target, lines.encode(), "p.jsonl")))))
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert rows(target) == [(1, "a", Decimal("0.10"), None), (2, "b", Decimal("12.50"), None),
                            (3, None, Decimal("7.77"), None),
                            (4, None, None, None)]


# --- permissions, tickets and limits ----------------------------------------------------------------------
def test_T20_import_needs_the_import_grant_and_insert_on_each_mapped_column(client, target):  # noqa: F811
    people(target)
    viewer = granted_user(target, "viewer", [(Action.VIEW, ""), (Action.INSERT, "")], STRONG_PASSWORD)
    client.force_login(viewer)
    assert client.get(f"/db/{target.connection.pk}/import/?{table_query(target)}").status_code == 403
    limited = granted_user(target, "limited", [(Action.VIEW, ""), (Action.IMPORT, ""), (Action.INSERT, "people", "id"),
                                               (Action.VIEW, "people", "secret", ColumnMode.HIDDEN)],
                           STRONG_PASSWORD)
    client.force_login(limited)
    url = preview_url(upload(client, target, b"id,secret,score\n1,s,2\n"))
    page = client.get(url)
    choices = [value for value, _ in page.context["mapping_form"].fields["map_0"].choices]
    assert choices == ["", "id"]  # neither the hidden column nor columns without insert
    response = start(client, url, map_2="score")
    assert response.status_code == 400
    assert rows(target) == [] and not Job.objects.exists()


def test_T20_a_ticket_names_one_users_upload_for_one_connection(client, target):  # noqa: F811
    people(target)
    client.force_login(importer_user(target))
    url = preview_url(upload(client, target, CSV))
    client.force_login(importer_user(target, "other"))
    assert client.get(url).status_code == 404
    query = parse_qs(urlsplit(url).query)
    ticket = query["u"][0]
    bad = ticket[:-2] + ("AA" if ticket[-2:] != "AA" else "BB")
    forged = f"{urlsplit(url).path}?{urlencode({**query, 'u': bad}, doseq=True)}"
    client.force_login(get_user_model().objects.get(username="importer"))
    assert client.get(forged).status_code == 404


def test_T28_an_upload_past_the_limit_is_refused_with_a_message(client, target, settings):  # noqa: F811
    people(target)
    settings.IMPORT_MAX_BYTES = 1000
    client.force_login(importer_user(target))
    response = upload(client, target, b"id\n" + b"1\n" * 2000)
    assert response.status_code == 413
    assert "larger than" in response.content.decode()
    assert not AuditEvent.objects.filter(action="import.upload").exists()


def test_T28_an_import_stops_past_the_row_limit_and_writes_nothing(client, target, settings):  # noqa: F811
    people(target)
    settings.IMPORT_MAX_ROWS = 5000
    client.force_login(importer_user(target))
    body = "id\n" + "".join(f"{i}\n" for i in range(1, 6001))
    job = run(job_of(start(client, preview_url(upload(client, target, body.encode())))))
    assert job.status == JobStatus.FAILED and "5,000" in job.message
    assert rows(target) == []


def test_T24_uploads_are_kept_private_under_random_names_in_the_data_directory(client, target, settings):  # noqa: F811
    people(target)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # the temporary-file path, not the in-memory one
    client.force_login(importer_user(target))
    before = set(settings.DATA.jobs_dir.iterdir()) if settings.DATA.jobs_dir.exists() else set()
    upload(client, target, CSV, name="../../etc/passwd")
    kept = sorted(set(settings.DATA.jobs_dir.iterdir()) - before)
    assert len(kept) == 1 and len(kept[0].name) == 32 and kept[0].read_bytes() == CSV
    assert kept[0].stat().st_mode & 0o077 == 0
