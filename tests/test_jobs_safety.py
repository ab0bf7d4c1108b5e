"""Security review of the background jobs (bastion.jobs, static/bastion/jobs.js): one regression test per finding,
named after its SECURITY.md row. Each was seen failing with its fix taken out.

Jobs run through the real database queue (``run_pending()``); the job page's script runs under Node with a small
stand-in for the DOM that refuses HTML (skipped where Node is missing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from bastion.audit.models import AuditEvent
from bastion.jobs import runners, services, tasks
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.runners import JobCancelled, Progress
from bastion.jobs.worker import run_pending
from tests.engines import sqlite_target  # noqa: F401
from tests.test_jobs import restore, stub_worker

pytestmark = pytest.mark.django_db

TEST_KIND = "test-safety"
JOBS_JS = Path(__file__).resolve().parents[1] / "bastion" / "web" / "static" / "bastion" / "jobs.js"


@pytest.fixture
def runner():
    """A runner for TEST_KIND: ``behaviour["before"](job, progress)`` first, then 3 rows, checking should_stop."""
    behaviour: dict = {"rows": 3}

    def run(job: Job, progress: Progress) -> str:
        if "before" in behaviour:
            behaviour["before"](job, progress)
        for row in range(1, behaviour["rows"] + 1):
            if progress.should_stop():
                raise JobCancelled()
            progress.update(row, bytes_done=row * 10)
        return f"Counted {behaviour['rows']} rows."

    runners.register(TEST_KIND, run)
    yield behaviour
    runners.unregister(TEST_KIND)


# --- T20: access that ends while a job runs, or whose object is gone -------------------------------------------
def test_T20_an_export_whose_connection_was_removed_is_refused_not_500(client, sqlite_target):  # noqa: F811
    """Found: the export kind's download check reflected the table through a connection that is None (SET_NULL
    when a manager removes the connection): AttributeError, a 500 on the download (T20: never 500)."""
    from tests.test_transfer_export import export_url, exporter, people
    from tests.test_transfer_export_job import queue

    people(sqlite_target)
    client.force_login(exporter(sqlite_target))
    job = queue(client, export_url(sqlite_target))
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.file_name
    sqlite_target.connection.delete()
    client.raise_request_exception = False
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 403 and "cannot be downloaded" in response.content.decode()
    assert AuditEvent.objects.get(action="export.download").outcome == "denied"


def test_T20_a_download_check_that_breaks_refuses_the_download(client, user, monkeypatch):
    """Fail closed: any error inside a kind's download check is a refusal (403), never a 500 or a download."""
    def broken(job, who):
        raise RuntimeError("database unreachable")

    monkeypatch.setitem(runners._DOWNLOAD_CHECKS, "export", broken)
    from bastion.connections.models import Connection

    connection = Connection.objects.create(name="broken", engine="sqlite", sqlite_path="x.db")
    name, path = services.new_job_file()
    path.write_bytes(b"id\n1\n")
    now = timezone.now()
    job = Job.objects.create(owner=user, kind="export", status=JobStatus.SUCCEEDED, table="people",
                             connection=connection, params={"download_name": "people.csv"}, file_name=name,
                             file_size=5, finished_at=now, expires_at=now + timedelta(hours=1))
    client.force_login(user)
    client.raise_request_exception = False
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 403 and "could not check" in response.content.decode()


def test_T20_a_running_job_stops_when_its_owner_is_deactivated(user, runner):
    """Found: runners checked the owner's account when they started only, so an import went on writing rows for
    up to BASTION_IMPORT_TIMEOUT after the account was deactivated (a leaver's job)."""
    def deactivate(job, progress):
        type(user).objects.filter(pk=user.pk).update(is_active=False)

    runner["before"] = deactivate
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.rows_done == 0
    assert "deactivated" in job.message


# --- T33: what the user is told is what happened -------------------------------------------------------------------
def test_T33_a_job_the_sweep_failed_stops_and_keeps_the_sweeps_outcome(user, runner):
    """Found: when the sweep took a job's worker for dead (no heartbeat for STALE_SECONDS: a suspended VM, the
    metadata database out of reach), it told the user "Nothing was written. Start the import again", yet the
    runner went on and committed, and the row then flipped to "Done": a user following the advice imports twice."""
    def sweep_takes_it_for_dead(job, progress):
        old = timezone.now() - timedelta(seconds=services.STALE_SECONDS + 5)
        Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
        assert services.mark_interrupted() == 1

    runner["before"] = sweep_takes_it_for_dead
    job = services.submit(user, TEST_KIND)
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.message.startswith("Interrupted")
    assert job.rows_done == 0  # the runner wrote nothing after the sweep


# --- T28: a healthy job is not taken for dead; disk; the supervisor keeps a worker running --------------------------
def test_T28_the_heartbeat_goes_on_after_a_failed_write(monkeypatch):
    """Found: one failed heartbeat write (SQLite "database is locked" past its timeout, a dropped connection)
    ended the heartbeat thread for good; a job then inside one long statement (a count, a COPY's end, a commit)
    was failed by the sweep two minutes later although its runner was well."""
    from django.db.utils import OperationalError

    writes: list[str] = []

    class FlakyQuery:
        def update(self, **fields):
            writes.append("try")
            if len(writes) == 1:
                raise OperationalError("database is locked")
            return 1

    monkeypatch.setattr(tasks, "Job", SimpleNamespace(objects=SimpleNamespace(filter=lambda **kw: FlakyQuery())))
    with tasks._heartbeat("job-id", every=0.02):
        deadline = time.monotonic() + 5
        while len(writes) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(writes) >= 3, "the heartbeat stopped after one failed write"


def test_T28_an_export_job_stops_before_the_disk_is_full(user, runner, monkeypatch, settings):
    """Found: an export job wrote its file into the data directory (beside the metadata database and the audit
    log) with no size bound and no look at the free space: one large export could fill the disk and stop the
    audit log and every other write. Now it fails below the reserve and keeps no file."""
    settings.JOBS_DISK_RESERVE_MB = 100
    free = {"bytes": 10 * 1024**3}
    real_usage = shutil.disk_usage
    monkeypatch.setattr(runners.shutil, "disk_usage",
                        lambda path: real_usage(path)._replace(free=free["bytes"]))

    def write(job, progress):
        with services.job_path(job).open("wb") as out:
            for row in range(1, 4):
                out.write(b"x" * 10)
                free["bytes"] = 50 * 1024**2 if row == 2 else free["bytes"]
                progress._written_at = None  # every update is written (and the disk looked at)
                progress.update(row, bytes_done=row * 10)
        return "Exported 3 rows."

    real = runners.runner_for("export")
    runners.register("export", write)
    try:
        name, path = services.new_job_file()
        job = services.submit(user, "export", file_name=name)
        run_pending()
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED and "nearly full" in job.message
        assert job.file_name == "" and not path.exists()

        free["bytes"] = 10 * 1024**3  # enough room: the same export succeeds
        runners.register("export", lambda job, progress: (services.job_path(job).write_bytes(b"x"),
                                                          progress.update(1, bytes_done=1), "Done.")[-1])
        name, path = services.new_job_file()
        job = services.submit(user, "export", file_name=name)
        run_pending()
        assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED and path.exists()
    finally:
        restore("export", real)


def test_T28_the_supervisor_keeps_trying_when_a_worker_cannot_be_started():
    """Found: an OSError from Popen (no memory or process slots left, often the very reason the worker died)
    ended the supervisor; gunicorn's master starts it once only, so jobs stayed queued until a restart."""
    from bastion.jobs.embedded import Supervisor

    reports: list[str] = []
    supervisor = Supervisor(lambda: ["/nonexistent/bastion-worker"], first_delay=0.02, longest_delay=0.05,
                            report=reports.append)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            supervisor.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while len(supervisor.delays) < 3 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    supervisor.stop()
    thread.join(timeout=10)
    assert not failure, failure
    assert supervisor.delays[:3] == [0.02, 0.04, 0.05]
    assert any("could not be started" in line for line in reports)


def test_T28_the_supervisor_outlives_a_terminal_hang_up():
    """Found: the terminal hanging up (SIGHUP to the foreground group) makes gunicorn's master reload, not exit,
    but killed the supervisor, which the master never starts again: no worker, jobs queued for ever."""
    code = ("import sys\n"
            "from bastion.jobs import embedded\n"
            "embedded.worker_argv = lambda parent: [sys.executable, '-c', 'import time; time.sleep(60)']\n"
            f"sys.argv = ['embedded', '--parent', '{os.getpid()}']\n"
            "sys.exit(embedded.main())\n")
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    try:
        assert "worker started" in process.stderr.readline()
        process.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert process.poll() is None, "the supervisor died of SIGHUP"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


# --- T23: target connections use only their own settings -------------------------------------------------------------
def test_T23_the_worker_drops_the_database_clients_environment(monkeypatch):
    """Found: `bastion serve` drops PG*/MYSQL_* variables before gunicorn starts (libpq would send the operator's
    PGPASSWORD to a registered host whose connection has no password, and read PGOPTIONS, PGSERVICEFILE...), but
    `bastion worker`, which opens the same target connections for imports and exports, kept them."""
    from django_tasks_db.management.commands import db_worker

    from bastion.jobs import worker

    environment = dict(os.environ, PGPASSWORD="operators-secret", PGSERVICEFILE="/root/.pg_service.conf",
                       MYSQL_PWD="x", BASTION_KEEP="1")
    monkeypatch.setattr(os, "environ", environment)
    seen: list[dict[str, str]] = []

    monkeypatch.setattr(db_worker, "Worker", stub_worker(lambda stub: seen.append(dict(os.environ))))
    assert worker.run() == 0
    assert seen and not [name for name in seen[0] if name.startswith(("PG", "MYSQL_", "LIBMYSQL_"))]
    assert seen[0]["BASTION_KEEP"] == "1"


# --- T10 and T05: the job page's polling script --------------------------------------------------------------------
NODE_HARNESS = r"""
const fs = require("fs");
const vm = require("vm");
const script = fs.readFileSync(process.argv[1], "utf8");
const scenario = JSON.parse(process.argv[2]);
let now = 0;
const timers = [];
const listeners = {};
const fetched = [];
function node(id, attrs) {
  const n = { id, hidden: false, textContent: "", attrs: Object.assign({}, attrs || {}), classes: new Set(),
              children: [] };
  n.classList = { add: c => n.classes.add(c), remove: c => n.classes.delete(c) };
  n.setAttribute = (k, v) => { n.attrs[k] = String(v); };
  n.getAttribute = k => (k in n.attrs ? n.attrs[k] : null);
  n.removeAttribute = k => { delete n.attrs[k]; };
  n.querySelectorAll = () => n.children;
  for (const bad of ["innerHTML", "outerHTML"]) {
    Object.defineProperty(n, bad, { get() { return ""; }, set() { throw new Error(bad + " written"); } });
  }
  n.insertAdjacentHTML = () => { throw new Error("insertAdjacentHTML used"); };
  return n;
}
const nodes = {};
for (const id of ["job-bar", "job-percent", "job-summary", "job-status", "job-message", "job-error", "job-cancel",
                  "job-download", "job-file", "job-refresh", "job-paused"]) { nodes[id] = node(id); }
nodes["job-progress"] = node("job-progress", { "data-status-url": "/jobs/1/status/", "data-final": "false",
                                               "data-idle-seconds": String(scenario.idle) });
nodes["job-error"].children = ["row", "column", "reason"].map(k => node("e-" + k, { "data-error": k }));
const document = {
  visibilityState: "visible",
  getElementById: id => nodes[id] || null,
  addEventListener: (type, fn) => { (listeners[type] = listeners[type] || []).push(fn); },
};
function respond() {
  const answer = scenario.answers[Math.min(fetched.length - 1, scenario.answers.length - 1)];
  const headers = { get: name => (name.toLowerCase() === "content-type" ? answer.type : null) };
  return Promise.resolve({ ok: answer.status >= 200 && answer.status < 300, status: answer.status,
                           type: answer.status === 0 ? "opaqueredirect" : "basic", headers,
                           json: () => Promise.resolve(answer.body) });
}
const context = {
  document, console,
  window: { setTimeout: (fn, ms) => { timers.push({ at: now + ms, fn }); return timers.length; } },
  fetch: (url) => { fetched.push({ url, at: now }); return respond(); },
  Date: { now: () => now },
  Math, JSON, String, parseInt, Error, Promise,
};
vm.createContext(context);
vm.runInContext(script, context);
async function advance(until) {
  for (;;) {
    await new Promise(r => setImmediate(r));
    timers.sort((a, b) => a.at - b.at);
    if (!timers.length || timers[0].at > until) { now = until; await new Promise(r => setImmediate(r)); return; }
    const t = timers.shift();
    now = t.at;
    t.fn();
  }
}
(async () => {
  const marks = [];
  for (const step of scenario.steps) {
    if (step.until !== undefined) { await advance(step.until); }
    if (step.event) { for (const fn of listeners[step.event] || []) { fn({}); } }
    await advance(now);
    marks.push(fetched.length);
  }
  process.stdout.write(JSON.stringify({
    marks, message: nodes["job-message"].textContent, summary: nodes["job-summary"].textContent,
    column: nodes["job-error"].children[1].textContent, paused: !nodes["job-paused"].hidden,
    refresh: !nodes["job-refresh"].hidden,
  }));
})().catch(e => { process.stdout.write(JSON.stringify({ error: String(e) })); });
"""


def run_jobs_js(scenario: dict) -> dict:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed")
    output = subprocess.run([node, "-e", NODE_HARNESS, "--", str(JOBS_JS), json.dumps(scenario)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    result = json.loads(output)
    assert "error" not in result, result
    return result


def running(summary: str = "5 rows done") -> dict:
    return {"status": 200, "type": "application/json", "body": {
        "status": "running", "status_label": "Running", "badge": "", "final": False, "percent": 10.0,
        "summary": summary, "message": "", "error": {}, "cancel_requested": False, "downloadable": False,
        "file": ""}}


def test_T10_an_unattended_job_page_stops_polling_so_the_session_can_time_out():
    """Found: the page asked for the job's state every second for as long as the job was not final, and every
    request refreshes the session: a tab left open on a queued job (a worker down) or a long import kept the
    session alive past the idle timeout, up to the absolute lifetime. Now polling pauses after half the idle
    timeout without use, and resumes when the page is used again."""
    result = run_jobs_js({"idle": 60, "answers": [running()], "steps": [
        {"until": 10_000}, {"until": 29_000}, {"until": 600_000}, {"event": "keydown"}, {"until": 605_000}]})
    at_10s, at_29s, at_10min, after_key, later = result["marks"]
    assert 8 <= at_10s <= 10 and 27 <= at_29s <= 29  # about one request a second while the page is in use
    assert at_10min <= at_29s + 1, f"still polling after 10 unattended minutes ({at_10min} requests)"
    assert result["paused"] is False and after_key == at_10min + 1 and later >= after_key + 4  # resumed on use


def test_T10_polling_stops_when_the_answer_is_not_the_jobs_state():
    """Signed out (a redirect to the login page), the job gone (404): no retry every 5 seconds for ever."""
    for answer in ({"status": 0, "type": "", "body": None},
                   {"status": 404, "type": "text/html", "body": None},
                   {"status": 200, "type": "text/html; charset=utf-8", "body": None}):
        result = run_jobs_js({"idle": 1800, "answers": [running(), answer], "steps": [{"until": 120_000}]})
        assert result["marks"] == [2] and result["refresh"] is True, (answer, result)


def test_T05_job_text_reaches_the_page_as_text_only():
    """Guard (no finding): the message, summary and error cells are set with textContent, never as HTML."""
    hostile = "<img src=x onerror=alert(1)>"
    failed = running(summary=hostile)
    failed["body"].update(status="failed", status_label="Failed", badge="failure", final=True, message=hostile,
                          error={"row": 3, "column": hostile, "reason": hostile})
    result = run_jobs_js({"idle": 1800, "answers": [failed], "steps": [{"until": 5_000}]})
    assert result["message"] == hostile and result["summary"] == hostile and result["column"] == hostile
    assert result["marks"] == [1]  # the final state ends the polling
