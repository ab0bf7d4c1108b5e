"""Background jobs (bastion.jobs): submit and limits, the task's outcomes, progress, cancel, the pages and files.

Jobs run through the real database queue: ``run_pending()`` runs what is queued, in the test's process.
"""

from __future__ import annotations

import os
import stat
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from bastion.audit.models import AuditEvent
from bastion.jobs import runners, services
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.runners import JobCancelled, JobFailed, Progress
from bastion.jobs.worker import run_pending
from tests.conftest import login

pytestmark = pytest.mark.django_db

TEST_KIND = "test-count"


@pytest.fixture
def runner():
    """Registers a runner for TEST_KIND (from test code only) that does what the test sets in ``behaviour``."""
    seen: list[Job] = []
    behaviour: dict = {"rows": 3}

    def run(job: Job, progress: Progress) -> str:
        seen.append(job)
        if "before" in behaviour:
            behaviour["before"](job, progress)
        for row in range(1, behaviour["rows"] + 1):
            if progress.should_stop():
                raise JobCancelled()
            progress.update(row, bytes_done=row * 10)
        if "raise" in behaviour:
            raise behaviour["raise"]
        return f"Counted {behaviour['rows']} rows."

    runners.register(TEST_KIND, run)
    yield seen, behaviour
    runners.unregister(TEST_KIND)


def stub_worker(on_run):
    """A stand-in for django-tasks-db's Worker class whose run() calls ``on_run(worker)`` and returns."""

    class StubWorker:
        def __init__(self, **options):
            self.worker_id = options["worker_id"]

        def configure_signals(self):
            pass

        def run(self):
            on_run(self)

    return StubWorker


def restore(kind: str, real) -> None:
    """Put back the runner an app registered for ``kind`` (the transfer app's, for imports and exports)."""
    if real is None:
        runners.unregister(kind)
    else:
        runners.register(kind, real)


@pytest.fixture
def manager(make_user):
    from django.contrib.auth.models import Group

    from bastion.access.models import Action
    from bastion.access.roles import add_grant

    managers = Group.objects.create(name="managers")
    add_grant(None, None, managers, Action.MANAGE)
    user = make_user("manager")
    user.groups.add(managers)
    return user


# --- submit and limits ---------------------------------------------------------------------------------
def test_submit_queues_the_job_on_the_task_queue(user):
    job = services.submit(user, TEST_KIND, table="orders", schema=None, params={"a": 1}, bytes_total=100)
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.schema == "" and job.params == {"a": 1}
    assert job.task_id and DBTaskResult.objects.filter(pk=job.task_id).exists()
    task = DBTaskResult.objects.get(pk=job.task_id)
    assert task.task_path == "bastion.jobs.tasks.run_job" and task.args_kwargs["args"] == [str(job.pk)]


def test_T28_submit_refuses_past_the_per_user_limit(user, make_user, settings):
    settings.JOBS_MAX_RUNNING = 2
    services.submit(user, TEST_KIND)
    services.submit(user, TEST_KIND)
    with pytest.raises(services.TooManyJobs, match=r"already have 2 jobs queued or running.*\(2\)"):
        services.submit(user, TEST_KIND)
    with pytest.raises(services.TooManyJobs):
        services.check_room(user)
    assert Job.objects.filter(owner=user).count() == 2
    services.submit(make_user("bob"), TEST_KIND)  # another user's jobs do not count
    Job.objects.filter(owner=user).update(status=JobStatus.SUCCEEDED)  # finished ones do not either
    services.check_room(user)
    services.submit(user, TEST_KIND)


def test_submit_refuses_a_file_name_it_did_not_make(user):
    with pytest.raises(ValueError):
        services.submit(user, TEST_KIND, file_name="../secret_key")


def test_T24_a_file_goes_to_one_job_only_even_when_submitted_twice(user, settings):
    settings.JOBS_MAX_RUNNING = 5
    name, _path = services.new_job_file()
    first = services.submit(user, TEST_KIND, file_name=name)
    with pytest.raises(services.FileInUse):
        services.submit(user, TEST_KIND, file_name=name)
    assert list(Job.objects.values_list("pk", flat=True)) == [first.pk]


def test_job_files_are_private_and_named_safely(settings):
    name, path = services.new_job_file()
    assert path.parent == settings.DATA.jobs_dir and path.name == name and path.read_bytes() == b""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.DATA.jobs_dir.stat().st_mode) == 0o700
    assert services.job_path(name) == path
    for bad in ("", "../secret_key", "/etc/passwd", name.upper(), name + "x"):
        with pytest.raises(ValueError):
            services.job_path(bad)


# --- the task -------------------------------------------------------------------------------------------
def test_the_task_runs_the_job_and_records_success(user, runner):
    seen, behaviour = runner
    statuses = []
    behaviour["before"] = lambda job, progress: statuses.append(job.status)
    job = services.submit(user, TEST_KIND, bytes_total=30)
    assert run_pending() == 1
    job.refresh_from_db()
    assert [j.pk for j in seen] == [job.pk] and statuses == [JobStatus.RUNNING]
    assert job.status == JobStatus.SUCCEEDED and job.message == "Counted 3 rows."
    assert job.rows_done == 3 and job.bytes_done == 30 and job.error == {}
    assert job.started_at <= job.finished_at and job.heartbeat_at is not None
    assert DBTaskResult.objects.get(pk=job.task_id).status == "SUCCESSFUL"
    assert run_pending() == 0


def test_a_failing_job_records_the_row_column_and_reason(user, runner):
    _seen, behaviour = runner
    behaviour["raise"] = JobFailed("Row 2: “abc” is not a number.", row=2, column="price", reason="not a number")
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.message == "Row 2: “abc” is not a number."
    assert job.error == {"row": 2, "column": "price", "reason": "not a number"}


def test_an_unexpected_error_fails_the_job_without_showing_its_text(user, runner, json_lines):
    _seen, behaviour = runner
    behaviour["raise"] = RuntimeError("password=hunter2 in an internal message")
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "unexpected error" in job.message
    assert "hunter2" not in job.message and job.error == {}
    assert any("job_failed_unexpectedly" in line for line in json_lines())


def test_a_job_interrupted_by_the_worker_stopping_says_so(user, runner):
    _seen, behaviour = runner
    behaviour["raise"] = SystemExit(1)  # what the worker's second SIGTERM raises inside the running job
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.message.startswith("Interrupted: the worker was stopped")
    assert job.rows_done == 3


def test_a_kind_without_runner_fails_plainly(user):
    job = services.submit(user, "no-such-kind")
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no runner" in job.message


def test_an_import_input_file_goes_when_the_job_ends(user, runner):
    _seen, behaviour = runner
    real = runners.runner_for("import")
    runners.register("import", runners.runner_for(TEST_KIND))
    try:
        for outcome in (None, JobFailed("refused")):
            if outcome:
                behaviour["raise"] = outcome
            name, path = services.new_job_file()
            path.write_bytes(b"a,b\n1,2\n")
            job = services.submit(user, "import", file_name=name)
            run_pending()
            job.refresh_from_db()
            assert not path.exists() and job.file_name == ""
    finally:
        restore("import", real)


def test_an_export_file_is_kept_until_it_expires_only_when_the_export_succeeded(user, runner, settings):
    _seen, behaviour = runner
    settings.JOB_FILE_SECONDS = 3600

    def write(job, progress):
        services.job_path(job).write_bytes(b"id\n1\n")

    behaviour["before"] = write
    real = runners.runner_for("export")
    runners.register("export", runners.runner_for(TEST_KIND))
    try:
        name, path = services.new_job_file()
        job = services.submit(user, "export", file_name=name)
        run_pending()
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED and job.file_name == name and job.file_size == 5
        assert timedelta(minutes=59) < job.expires_at - job.finished_at <= timedelta(hours=1)
        assert path.exists()

        behaviour["raise"] = JobFailed("The table is gone.")
        name, path = services.new_job_file()
        job = services.submit(user, "export", file_name=name)
        run_pending()
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and job.file_name == "" and not path.exists()
    finally:
        restore("export", real)


# --- progress ---------------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_writes_at_most_twice_a_second_plus_the_final_write(user):
    job = services.submit(user, TEST_KIND, rows_total=1000)
    clock = FakeClock()
    progress = Progress(job, clock=clock)
    for rows in range(1, 101):  # 100 updates within 0.099 s: one write (the first)
        clock.now += 0.001
        progress.update(rows, bytes_done=rows * 2)
    assert progress.writes == 1
    assert Job.objects.get(pk=job.pk).rows_done == 1
    clock.now += 0.5
    progress.update(101)
    assert progress.writes == 2 and Job.objects.get(pk=job.pk).rows_done == 101
    progress.update(150, rows_total=2000)
    assert progress.writes == 2
    progress.flush()  # the final write, whatever the time
    row = Job.objects.get(pk=job.pk)
    assert progress.writes == 3 and (row.rows_done, row.bytes_done, row.rows_total) == (150, 200, 2000)
    progress.flush()
    assert progress.writes == 3  # nothing new, nothing written


def test_should_stop_rereads_the_cancel_flag_at_most_twice_a_second(user, django_assert_num_queries):
    job = services.submit(user, TEST_KIND)
    clock = FakeClock()
    progress = Progress(job, clock=clock)
    with django_assert_num_queries(1):
        assert progress.should_stop() is False
        Job.objects.filter(pk=job.pk)  # (no query: a lazy queryset)
        for _ in range(50):
            clock.now += 0.001
            assert progress.should_stop() is False
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    assert progress.should_stop() is False  # not re-read yet
    clock.now += 0.5
    assert progress.should_stop() is True
    with django_assert_num_queries(0):
        assert progress.should_stop() is True


# --- cancel ----------------------------------------------------------------------------------------------------
def test_cancelling_a_queued_job_cancels_it_at_once_and_it_never_runs(user, runner):
    seen, _behaviour = runner
    name, path = services.new_job_file()
    job = services.submit(user, TEST_KIND, file_name=name)
    services.cancel(job, user)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.cancel_requested and job.finished_at
    assert "before it started" in job.message and not path.exists()
    events = AuditEvent.objects.filter(action="job.cancel")
    assert events.count() == 1 and events.get().details["was"] == "queued"
    run_pending()
    assert seen == [] and Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_cancelling_a_running_job_stops_it_at_the_runners_next_check(user, runner):
    seen, behaviour = runner
    behaviour["before"] = lambda job, progress: services.cancel(Job.objects.get(pk=job.pk), user)
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert len(seen) == 1 and job.status == JobStatus.CANCELLED and job.message == "Cancelled."
    assert job.rows_done == 0
    assert AuditEvent.objects.filter(action="job.cancel").get().details["was"] == "running"


def test_cancelling_a_finished_job_changes_nothing(user, runner):
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    services.cancel(job, user)
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    assert not AuditEvent.objects.filter(action="job.cancel").exists()


def test_only_the_owner_or_a_manager_may_cancel(user, make_user, manager):
    job = services.submit(user, TEST_KIND)
    with pytest.raises(PermissionError):
        services.cancel(job, make_user("mallory"))
    services.cancel(job, manager)
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED


# --- sweeps ------------------------------------------------------------------------------------------------------
def test_a_job_whose_worker_died_is_marked_failed(user):
    name, path = services.new_job_file()
    old = timezone.now() - timedelta(seconds=services.STALE_SECONDS + 5)
    dead = Job.objects.create(owner=user, kind="import", status=JobStatus.RUNNING, started_at=old,
                              heartbeat_at=old, file_name=name)
    never_beat = Job.objects.create(owner=user, kind="export", status=JobStatus.RUNNING, started_at=old)
    alive = Job.objects.create(owner=user, kind="import", status=JobStatus.RUNNING, started_at=old,
                               heartbeat_at=timezone.now())
    assert services.mark_interrupted() == 2
    dead.refresh_from_db()
    assert dead.status == JobStatus.FAILED and dead.finished_at
    assert dead.message.startswith("Interrupted") and "Nothing was written" in dead.message
    assert not path.exists() and dead.file_name == ""
    assert Job.objects.get(pk=never_beat.pk).status == JobStatus.FAILED
    assert "No file was kept" in Job.objects.get(pk=never_beat.pk).message
    assert Job.objects.get(pk=alive.pk).status == JobStatus.RUNNING


def test_the_worker_fails_jobs_of_dead_workers_when_it_starts(user, monkeypatch):
    from django_tasks_db.management.commands import db_worker

    from bastion.jobs import worker

    started = []

    monkeypatch.setattr(db_worker, "Worker", stub_worker(lambda stub: started.append(stub.worker_id)))
    old = timezone.now() - timedelta(hours=1)
    dead = Job.objects.create(owner=user, kind="import", status=JobStatus.RUNNING, started_at=old, heartbeat_at=old)
    assert worker.run() == 0
    assert started and Job.objects.get(pk=dead.pk).status == JobStatus.FAILED


def test_expired_and_orphaned_files_are_deleted_by_the_cleanup(user, settings):
    now = timezone.now()
    expired_name, expired = services.new_job_file()
    kept_name, kept = services.new_job_file()
    old_orphan_name, old_orphan = services.new_job_file()
    _new_orphan_name, new_orphan = services.new_job_file()
    gone = Job.objects.create(owner=user, kind="export", status=JobStatus.SUCCEEDED, file_name=expired_name,
                              file_size=1, expires_at=now - timedelta(seconds=1))
    Job.objects.create(owner=user, kind="export", status=JobStatus.SUCCEEDED, file_name=kept_name,
                       expires_at=now + timedelta(hours=1))
    long_ago = time.time() - max(services.ORPHAN_MIN_SECONDS, settings.JOB_FILE_SECONDS) - 60
    os.utime(old_orphan, (long_ago, long_ago))
    leftover = settings.DATA.jobs_dir / "tmpa1b2_c3.upload.csv"  # Django's temporary upload, process killed
    leftover.write_bytes(b"x")
    os.utime(leftover, (long_ago, long_ago))
    unrelated = settings.DATA.jobs_dir / "notes.txt"
    unrelated.write_bytes(b"x")
    os.utime(unrelated, (long_ago, long_ago))
    assert old_orphan_name
    assert services.cleanup_expired_files() == 3
    assert not expired.exists() and not old_orphan.exists() and kept.exists() and new_orphan.exists()
    assert not leftover.exists() and unrelated.exists()
    unrelated.unlink()
    gone.refresh_from_db()
    assert gone.file_name == "" and gone.expires_at is not None


def test_the_queues_old_task_records_are_pruned_but_jobs_stay(user, runner):
    job = services.submit(user, TEST_KIND)
    run_pending()
    assert services.prune_task_results() == 0
    later = timezone.now() + timedelta(days=services.TASK_RESULT_DAYS, seconds=1)
    assert services.prune_task_results(now=later) == 1
    assert not DBTaskResult.objects.exists() and Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED


# --- the pages --------------------------------------------------------------------------------------------------
def signed_in(client, user):
    response = login(client, user.username)
    assert response.status_code == 302
    return client


def test_the_list_shows_only_the_users_own_jobs_newest_first(client, user, make_user):
    mine_old = services.submit(user, TEST_KIND, table="old_table")
    mine_new = services.submit(user, TEST_KIND, table="new_table")
    Job.objects.filter(pk=mine_old.pk).update(created_at=timezone.now() - timedelta(hours=1))
    theirs = services.submit(make_user("bob"), TEST_KIND, table="bobs_table")
    page = signed_in(client, user).get("/jobs/").content.decode()
    assert page.index(str(mine_new.pk)) < page.index(str(mine_old.pk))
    assert str(theirs.pk) not in page and "bobs_table" not in page
    assert "Everyone" not in page  # no filter for users without manage
    assert client.get("/jobs/?who=all").content.decode().count("bobs_table") == 0


def test_a_manager_may_list_everyones_jobs(client, user, manager):
    theirs = services.submit(user, TEST_KIND, table="alices_table")
    signed_in(client, manager)
    assert "alices_table" not in client.get("/jobs/").content.decode()
    page = client.get("/jobs/?who=all").content.decode()
    assert str(theirs.pk) in page and "alices_table" in page and "alice" in page
    assert client.get(f"/jobs/{theirs.pk}/").status_code == 200
    assert client.get(f"/jobs/{theirs.pk}/status/").status_code == 200


@pytest.mark.parametrize("method, suffix", [("get", ""), ("get", "status/"), ("post", "cancel/"),
                                            ("post", "download/")])
def test_another_users_job_is_not_revealed(client, user, make_user, method, suffix):
    theirs = services.submit(make_user("bob"), TEST_KIND)
    signed_in(client, user)
    response = getattr(client, method)(f"/jobs/{theirs.pk}/{suffix}")
    assert response.status_code == 404
    assert Job.objects.get(pk=theirs.pk).status == JobStatus.QUEUED


def test_the_detail_page_shows_progress_and_a_refresh_link(client, user):
    job = services.submit(user, TEST_KIND, table="orders", bytes_total=1000)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, started_at=timezone.now() - timedelta(seconds=10),
                                         rows_done=5000, bytes_done=250)
    page = signed_in(client, user).get(f"/jobs/{job.pk}/").content.decode()
    assert '<progress id="job-bar" max="100" value="25.0"' in page
    assert "5,000 rows done · 250\xa0bytes of 1000\xa0bytes ·" in page and " rows/s · about " in page
    assert f'href="/jobs/{job.pk}/"' in page and "Refresh" in page  # works without JavaScript
    assert f'data-status-url="/jobs/{job.pk}/status/"' in page and "bastion/jobs.js" in page
    assert "Cancel" in page


def test_the_status_json_reports_the_state_and_changes_nothing(client, user, runner):
    job = services.submit(user, TEST_KIND, rows_total=6)
    signed_in(client, user)
    before = Job.objects.values().get(pk=job.pk)
    state = client.get(f"/jobs/{job.pk}/status/").json()
    assert Job.objects.values().get(pk=job.pk) == before
    assert state["status"] == "queued" and state["final"] is False and state["percent"] == 0.0
    run_pending()
    response = client.get(f"/jobs/{job.pk}/status/")
    assert response["Content-Type"] == "application/json" and response["Cache-Control"] == "no-store"
    state = response.json()
    assert state["status"] == "succeeded" and state["final"] is True and state["percent"] == 100.0
    assert state["message"] == "Counted 3 rows." and state["status_label"] == "Done"
    assert state["rows_done"] == 3 and "3 rows of 6" in state["summary"]
    assert client.post(f"/jobs/{job.pk}/status/").status_code == 405


def test_cancel_from_the_page_is_a_post_and_audited(client, user):
    job = services.submit(user, TEST_KIND)
    signed_in(client, user)
    assert client.get(f"/jobs/{job.pk}/cancel/").status_code == 405
    response = client.post(f"/jobs/{job.pk}/cancel/", {"back": "list"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    event = AuditEvent.objects.get(action="job.cancel")
    assert event.actor == user.username and event.details["job"] == str(job.pk)


@pytest.fixture
def finished_export(user, settings, monkeypatch):
    """A kept export file of a job that stands for a real one; the export kind's download check (the grants,
    tested in tests/test_transfer_import_safety.py) lets its owner through."""
    monkeypatch.setitem(runners._DOWNLOAD_CHECKS, "export", lambda job, who: None)
    name, path = services.new_job_file()
    path.write_bytes(b"id,name\n1,Ada\n")
    now = timezone.now()
    job = Job.objects.create(owner=user, kind="export", status=JobStatus.SUCCEEDED, table="people",
                             params={"download_name": "people-2026.csv"}, file_name=name, file_size=14,
                             finished_at=now, expires_at=now + timedelta(hours=1))
    return job, path


def test_the_owner_downloads_a_kept_export_and_it_is_audited(client, user, finished_export):
    job, _path = finished_export
    signed_in(client, user)
    assert "Download" in client.get(f"/jobs/{job.pk}/").content.decode()
    assert client.get(f"/jobs/{job.pk}/download/").status_code == 405
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"id,name\n1,Ada\n"  # read to the end: closes the file
    assert response["Content-Disposition"] == 'attachment; filename="people-2026.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"
    event = AuditEvent.objects.get(action="export.download")
    assert event.actor == user.username and event.details["job"] == str(job.pk) and event.details["bytes"] == 14


def test_T20_a_download_the_kinds_check_refuses_is_403_and_audited(client, user, finished_export, monkeypatch):
    job, _path = finished_export
    monkeypatch.setitem(runners._DOWNLOAD_CHECKS, "export", lambda job, who: "Your role no longer may export.")
    signed_in(client, user)
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 403 and "no longer may export" in response.content.decode()
    assert AuditEvent.objects.get(action="export.download").outcome == "denied"


def test_a_manager_sees_an_export_but_may_not_download_it(client, manager, finished_export):
    job, _path = finished_export
    signed_in(client, manager)
    assert client.get(f"/jobs/{job.pk}/").status_code == 200
    assert client.post(f"/jobs/{job.pk}/download/").status_code == 403
    assert not AuditEvent.objects.filter(action="export.download").exists()


def test_an_expired_or_missing_file_is_refused_plainly(client, user, finished_export):
    job, path = finished_export
    signed_in(client, user)
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(f"/jobs/{job.pk}/download/", follow=True)
    assert "has expired" in response.content.decode()
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    path.unlink()
    response = client.post(f"/jobs/{job.pk}/download/", follow=True)
    assert "is missing" in response.content.decode()
    assert not AuditEvent.objects.filter(action="export.download").exists()


def test_the_nav_links_to_the_jobs_page(client, user):
    page = signed_in(client, user).get("/").content.decode()
    assert 'href="/jobs/"' in page


# --- the worker process and the CLI ---------------------------------------------------------------------------
def test_the_worker_command_parses():
    from bastion.cli import build_parser, cmd_worker

    args = build_parser().parse_args(["worker", "--interval", "0.5", "--data-dir", "/tmp/x"])
    assert args.func is cmd_worker and args.interval == 0.5 and args.data_dir_sub == "/tmp/x"
    assert args.parent is None and not args.sweep_only
    assert build_parser().parse_args(["worker", "--sweep-only"]).sweep_only


def test_T44_a_standalone_worker_runs_in_a_fresh_isolated_interpreter(monkeypatch):
    import sys

    from bastion import cli

    started = []

    def execv(path, argv):
        started.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(cli.os, "execv", execv)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/bastion", "--data-dir", "/srv/bastion", "worker"])
    with pytest.raises(SystemExit):
        cli.cmd_worker(cli.build_parser().parse_args(["worker", "--allow-root"]))
    assert started == [[sys.executable, "-I", "-m", "bastion.cli", "--data-dir", "/srv/bastion", "worker"]]


def test_serve_starts_the_embedded_worker_from_the_gunicorn_master():
    import argparse

    from bastion.server import gunicorn_options

    base = dict(host="127.0.0.1", port=8443, workers=1, proxy_count=0, plain_http=False, cert="c", key="k",
                http_redirect_port=0, site_url="")
    options = gunicorn_options(argparse.Namespace(**base, jobs_worker=True))
    assert callable(options["when_ready"]) and callable(options["on_exit"])
    assert "on_exit" not in gunicorn_options(argparse.Namespace(**base, jobs_worker=False))


def test_the_tasks_backend_is_a_setting(settings):
    from bastion import config

    assert settings.TASKS["default"]["BACKEND"] == "django_tasks_db.DatabaseBackend"
    values = config.load({"BASTION_TASKS_BACKEND": "django_tasks_rq.RQBackend", "BASTION_EMBEDDED_WORKER": "0",
                          "BASTION_JOBS_MAX_RUNNING": "5", "BASTION_JOB_FILE_HOURS": "2"})
    assert values["tasks_backend"] == "django_tasks_rq.RQBackend" and values["embedded_worker"] is False
    assert values["jobs_max_running"] == 5 and values["job_file_hours"] == 2


# --- the embedded worker's supervisor (started by `bastion serve`) -------------------------------------
def _supervise_in_thread(supervisor):
    import threading

    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    return thread


def _wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert condition()


def test_the_supervisor_restarts_a_dying_worker_waiting_longer_each_time():
    import sys

    from bastion.jobs.embedded import Supervisor

    reports: list[str] = []
    supervisor = Supervisor(lambda: [sys.executable, "-c", "raise SystemExit(3)"], first_delay=0.05,
                            longest_delay=0.2, report=reports.append)
    thread = _supervise_in_thread(supervisor)
    _wait_until(lambda: len(supervisor.delays) >= 4)
    supervisor.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert supervisor.delays[:4] == [0.05, 0.1, 0.2, 0.2]
    assert any("exited with 3; restarting it in 0.05 s" in line for line in reports)


def test_the_supervisor_stops_its_worker_when_asked():
    import sys

    from bastion.jobs.embedded import Supervisor

    supervisor = Supervisor(lambda: [sys.executable, "-c", "import time; time.sleep(60)"], report=lambda _: None)
    thread = _supervise_in_thread(supervisor)
    _wait_until(lambda: supervisor.starts == 1)
    started = time.monotonic()
    supervisor.stop()
    thread.join(timeout=15)
    assert not thread.is_alive() and time.monotonic() - started < 5 and supervisor.starts == 1


def test_the_supervisor_stops_when_the_server_is_gone():
    from bastion.jobs.embedded import Supervisor

    supervisor = Supervisor(lambda: ["false"], parent=os.getppid() + 1_000_000, report=lambda _: None)
    assert supervisor.run() == 0 and supervisor.starts == 0
