"""Security review of imports and export jobs (issue 8): each test is one confirmed finding, named after its
SECURITY.md row, and fails without its fix.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.test import RequestFactory
from sqlalchemy import text

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.policy import table_access
from bastion.audit.models import AuditEvent, Outcome
from bastion.connections import reflection
from bastion.connections.engines import get_engine
from bastion.explorer.schema import resolve_table
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.runners import JobFailed, Progress
from bastion.jobs.services import job_path
from bastion.transfer import export, export_job, import_steps, importer, uploads
from tests.conftest import STRONG_PASSWORD
from tests.engines import postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user
from tests.test_transfer_export import export_url, exporter
from tests.test_transfer_export import people as export_people
from tests.test_transfer_import import (
    importer_user,
    job_of,
    people,
    preview_url,
    rows,
    run,
    start,
    upload,
)

pytestmark = pytest.mark.django_db


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


# --- T31: masked columns -----------------------------------------------------------------------------------
def test_T31_a_masked_column_is_neither_filled_nor_overwritten_by_an_import(client, target):  # noqa: F811
    """The row forms never write a masked column, even one the admin named for insert and update: an import
    (update mode above all) would overwrite values the user cannot see, and recognise rows by them."""
    people(target)
    target.run(f"INSERT INTO {target.table('people')} (id, secret) VALUES (1, '4111111111111111')")  # noqa: S608
    user = granted_user(target, "masked", [
        (Action.VIEW, ""), (Action.IMPORT, ""), (Action.INSERT, ""), (Action.UPDATE, ""),
        (Action.VIEW, "people", "secret", ColumnMode.MASKED, MaskRule.LAST4),
        (Action.INSERT, "people", "secret"), (Action.UPDATE, "people", "secret")], STRONG_PASSWORD)
    client.force_login(user)
    url = preview_url(upload(client, target, b"id,secret\n1,0000000000000000\n2,2222\n"))
    page = client.get(url)
    assert "secret" not in [value for value, _ in page.context["mapping_form"].fields["map_1"].choices]
    response = start(client, url, map_1="secret", conflict="update")
    assert response.status_code == 400 and not Job.objects.exists()
    # A job queued while the column was clear is refused by the runner once it is masked.
    info = resolve_table(target.connection, target.schema, "people")
    access = table_access(user, target.connection.pk, target.schema, "people", info.column_names)
    problems = importer.mapping_problems(info, access, importer.Mapping(((0, "id"), (1, "secret")), "update"))
    assert any("secret" in problem for problem in problems)
    with get_engine(target.connection).connect() as conn:
        assert conn.execute(text(f"SELECT secret FROM {target.table('people')}")).scalar() == "4111111111111111"  # noqa: S608


# --- T02: identifiers the driver's placeholders look like --------------------------------------------------
@pytest.mark.parametrize("conflict", ["fail", "update"])
def test_T02_a_column_named_like_a_placeholder_is_written_as_a_literal_name(client, target, conflict):  # noqa: F811
    """SQLAlchemy turns %(name)s into ? even inside a quoted identifier when it compiles for SQLite's qmark style:
    the INSERT must not depend on that, and the value must land in the column the user named."""
    odd, other = "a%(p0)s?b", "?"
    quote = "`" if target.kind == "mysql" else '"'
    name = f"{quote}{target.schema}{quote}.{quote}odd{quote}" if target.schema else f"{quote}odd{quote}"
    _raw(target, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, {quote}{odd}{quote} VARCHAR(20), "
                 f"{quote}{other}{quote} VARCHAR(20))")
    user = granted_user(target, "odd", [(Action.VIEW, ""), (Action.IMPORT, ""), (Action.UPDATE, ""),
                                        (Action.INSERT, "odd", "id"), (Action.INSERT, "odd", odd)], STRONG_PASSWORD)
    client.force_login(user)
    url = preview_url(upload(client, target, b"id,v\n1,one\n2,two\n", table="odd"))
    if target.kind == "mysql" and conflict == "update":  # SQLAlchemy escapes it twice in VALUES(): refused clearly
        response = start(client, url, map_1=odd, conflict=conflict)
        assert response.status_code == 400 and "“%”" in response.content.decode()
        conflict = "fail"
    job = run(job_of(start(client, url, map_1=odd, conflict=conflict)))
    assert job.status == JobStatus.SUCCEEDED, job.message
    found = _raw(target, f"SELECT id, {quote}{odd}{quote}, {quote}{other}{quote} FROM {name} ORDER BY id")  # noqa: S608
    assert found == [(1, "one", None), (2, "two", None)]


def _raw(t: Any, sql: str) -> list[tuple]:
    """``sql`` run by the driver as written (no parameters: no driver reads placeholders in it)."""
    raw = get_engine(t.connection).raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(sql)
        found = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
        raw.commit()
    finally:
        raw.close()
    reflection.invalidate(t.connection)
    return found


# --- T33: every import writes its event, whatever stops it ------------------------------------------------
def test_T33_an_import_stopped_by_an_unexpected_error_is_still_audited(client, target):  # noqa: F811
    people(target)
    client.force_login(importer_user(target))
    job = job_of(start(client, preview_url(upload(client, target, b"id\n1\n"))))
    job_path(job).unlink()  # the file is gone (a disk tidied by hand, a second worker...)
    job = run(job)
    assert job.status == JobStatus.FAILED and "no longer there" in job.message
    [event] = _events(importer.IMPORTED)
    assert event.outcome == Outcome.FAILURE and event.details["job"] == str(job.pk)


def test_T33_an_import_stopped_by_a_bug_is_still_audited(client, sqlite_target, monkeypatch):  # noqa: F811
    people(sqlite_target)
    client.force_login(importer_user(sqlite_target))
    job = job_of(start(client, preview_url(upload(client, sqlite_target, b"id\n1\n"))))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(importer, "writer_for", broken)
    job = run(job)
    assert job.status == JobStatus.FAILED
    [event] = _events(importer.IMPORTED)
    assert event.outcome == Outcome.FAILURE and event.details["message"] == importer.UNEXPECTED


def test_T33_a_copy_the_database_refuses_at_once_is_a_clear_failure_and_audited(client, postgresql_target):  # noqa: F811
    """The table changed behind Bastion's back (its reflection is cached): COPY is refused when it starts."""
    t = postgresql_target
    people(t)
    client.force_login(importer_user(t))
    job = job_of(start(client, preview_url(upload(client, t, b"id,score\n1,2\n", table="people"))))
    with t.admin.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {t.table('people')} DROP COLUMN score")
    job = run(job)
    assert job.status == JobStatus.FAILED
    assert "refused" in job.message and "score" in job.message, job.message
    [event] = _events(importer.IMPORTED)
    assert event.outcome == Outcome.FAILURE


def test_T33_an_export_job_refused_when_it_runs_is_audited(client, target):  # noqa: F811
    export_people(target)
    user = exporter(target)
    client.force_login(user)
    response = client.post(export_url(target), {"format": "csv", "run": "job"})
    job = Job.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[-1])
    user.groups.clear()
    with pytest.raises(JobFailed):
        export_job.run(job, Progress(job))
    [event] = _events(export.EXPORTED)
    assert event.outcome != Outcome.SUCCESS and event.details["job"] == str(job.pk)
    assert event.actor_id == user.pk


# --- T28: limits ----------------------------------------------------------------------------------------------
def test_T28_an_import_stops_at_its_time_limit_on_every_engine(client, target, settings):  # noqa: F811
    """BASTION_IMPORT_TIMEOUT bounds the whole import (one transaction), not each INSERT statement."""
    people(target)
    client.force_login(importer_user(target, extra=((Action.UPDATE, ""),)))
    body = "id\n" + "".join(f"{i}\n" for i in range(1, 5001))
    job = job_of(start(client, preview_url(upload(client, target, body.encode())), conflict="update"))
    settings.IMPORT_TIMEOUT = 1

    class Slow(Progress):
        def should_stop(self) -> bool:
            time.sleep(0.6)
            return False

    with pytest.raises(JobFailed) as raised:
        importer.run(job, Slow(job))
    assert "longer than" in raised.value.message
    assert rows(target) == []


def test_T28_the_preview_reads_a_bounded_part_of_a_file_of_wide_rows(client, sqlite_target, settings):  # noqa: F811
    """The preview (every GET) and inference hold a few megabytes of the file, not its first 1,000 rows."""
    people(sqlite_target)
    client.force_login(importer_user(sqlite_target))
    wide = 100_000
    content = b"id,note\n" + b"".join(b"%d,%s\n" % (i, b"x" * wide) for i in range(200))
    url = preview_url(upload(client, sqlite_target, content))
    page = client.get(url)
    assert page.status_code == 200
    held = len(page.context["reading"].sample)
    assert held >= 1 and held * wide <= import_steps.SAMPLE_CHARS + wide


def test_T28_a_request_that_is_not_a_signed_in_users_upload_stops_at_the_body_limit(client, settings, monkeypatch):
    """BASTION_IMPORT_MAX_MB is for signed-in users' uploads: an anonymous multipart POST (to the login page)
    stops at the request body limit instead of spooling hundreds of megabytes to the data directory."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10
    received = []
    original = TemporaryFileUploadHandler.receive_data_chunk

    def spy(self: Any, raw_data: bytes, start: int) -> Any:
        received.append(len(raw_data))
        return original(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", spy)
    handle = io.BytesIO(b"x" * 1_000_000)
    handle.name = "big.bin"
    client.post("/accounts/login/", {"login": "x", "password": "y", "file": handle})
    assert sum(received) <= 100_000 + TemporaryFileUploadHandler.chunk_size
    request = RequestFactory().post("/accounts/login/")
    request.user = AnonymousUser()
    with pytest.raises(StopUpload):
        uploads.SizeLimit(request).receive_data_chunk(b"x" * 100_001, 0)


# --- T20/T24: one upload, one job ---------------------------------------------------------------------------------
def test_T24_an_upload_feeds_one_job_only(client, target):  # noqa: F811
    """Starting twice from the same preview (a double click, the Back button) must not import the file twice,
    nor leave a second job pointing at a file the first one deletes."""
    target.run(f"CREATE TABLE {target.table('log')} (n INTEGER)")
    client.force_login(granted_user(target, "logger", [(Action.VIEW, ""), (Action.INSERT, ""), (Action.IMPORT, "")],
                                    STRONG_PASSWORD))
    url = preview_url(upload(client, target, b"n\n1\n2\n", table="log"))
    first = job_of(start(client, url))
    page = client.get(url)
    assert page.status_code == 404
    again = client.post(url, {"action": "start", "format": "csv", "encoding": "utf-8", "delimiter": ",",
                              "quotechar": '"', "header": "on", "map_0": "n", "conflict": "fail"})
    assert again.status_code == 404
    assert list(Job.objects.values_list("pk", flat=True)) == [first.pk]


@pytest.mark.parametrize("conflict", ["fail", "update"])
def test_T28_a_statement_stopped_by_the_time_limit_is_not_blamed_on_a_row(client, target, settings, conflict):  # noqa: F811
    """A batch cut by the statement time limit must say so, not name its first row as refused by the database."""
    people(target)
    table = target.table("people")
    if target.kind == "sqlite":
        busy = "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e8) " \
               "SELECT x FROM c)"
        target.run(f"CREATE TRIGGER slow AFTER INSERT ON {table} BEGIN {busy}; END")
    elif target.kind == "postgresql":
        target.run(f"CREATE FUNCTION {target.q(target.schema)}.slow() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$",
                   f"CREATE TRIGGER slow AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION "
                   f"{target.q(target.schema)}.slow()")
    else:
        target.run(f"CREATE TRIGGER slow AFTER INSERT ON {table} FOR EACH ROW SET @slept = SLEEP(5)")
    client.force_login(importer_user(target, extra=((Action.UPDATE, ""),)))
    job = job_of(start(client, preview_url(upload(client, target, b"id\n1\n2\n")), conflict=conflict))
    settings.IMPORT_TIMEOUT = 1
    with pytest.raises(JobFailed) as raised:
        importer.run(job, Progress(job))
    assert "longer than" in raised.value.message and raised.value.row is None, raised.value.message
    assert rows(target) == []


def test_T28_an_import_sqlite_rolls_back_by_itself_leaves_nothing_behind(client, sqlite_target):  # noqa: F811
    """SQLite ends the whole transaction on some errors (a trigger's RAISE(ROLLBACK), an interrupt by the time limit,
    a full disk): retrying the batch's rows one by one under savepoints would then commit each row on its own."""
    t = sqlite_target
    people(t)
    t.run(f"CREATE TRIGGER no3 BEFORE INSERT ON {t.table('people')} WHEN NEW.id = 3 "
          "BEGIN SELECT RAISE(ROLLBACK, 'no three'); END")
    client.force_login(importer_user(t))
    job = run(job_of(start(client, preview_url(upload(client, t, b"id\n1\n2\n3\n4\n")))))
    assert job.status == JobStatus.FAILED and "no three" in job.message
    assert rows(t) == []


def test_T28_a_user_keeps_a_few_uploads_waiting_not_one_per_request(client, sqlite_target, settings):  # noqa: F811
    """Each upload may be BASTION_IMPORT_MAX_MB and one never imported stays a day: without a cap, a user fills the
    data directory's disk by uploading again and again. A file a job took is the job's, never removed here."""
    people(sqlite_target)
    client.force_login(importer_user(sqlite_target))
    folder = settings.DATA.jobs_dir
    before = set(folder.iterdir()) if folder.exists() else set()
    urls = [preview_url(upload(client, sqlite_target, b"id\n1\n")) for _ in range(uploads.WAITING_MAX + 2)]
    assert len(set(folder.iterdir()) - before) == uploads.WAITING_MAX
    assert client.get(urls[0]).status_code == 404 and client.get(urls[-1]).status_code == 200
    job = job_of(start(client, urls[-1]))
    for _ in range(uploads.WAITING_MAX):
        upload(client, sqlite_target, b"id\n2\n")
    assert job_path(job).is_file()


def test_T20_T31_a_kept_export_is_not_downloadable_once_the_export_grant_is_gone(client, target):  # noqa: F811
    export_people(target)
    user = exporter(target)
    client.force_login(user)
    response = client.post(export_url(target), {"format": "csv", "run": "job"})
    job = run(Job.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[-1]))
    assert job.status == JobStatus.SUCCEEDED, job.message
    user.groups.clear()  # the admin takes the role away (or masks a column) within the file's 24 hours
    response = client.post(f"/jobs/{job.pk}/download/")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    response.close()
    assert response.status_code in (302, 403, 404) and "Zürich".encode() not in body
