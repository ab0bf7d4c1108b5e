"""`bastion serve` runs a background-job worker beside gunicorn: a submitted job is run by it, and the server
restarts the worker when it dies (bastion.jobs.embedded)."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.live.conftest import LiveBastion
from tests.live.test_browser_e2e import NEW_PASSWORD

pytestmark = pytest.mark.live

STARTED = re.compile(r"Background-job worker started \(pid (\d+)\)")


def django(live: LiveBastion, code: str) -> str:
    """Run Python ``code`` with the live server's settings and data (`bastion manage shell -c`); its output."""
    output = live.cli("manage", "shell", "--no-imports", "-c", code).strip()
    return output.splitlines()[-1] if output else ""


def submit_probe(live: LiveBastion, username: str) -> str:
    # A kind without a runner: the worker fails it with its own message, which proves the worker ran it.
    return django(live, "from django.contrib.auth import get_user_model\n"
                        "from bastion.jobs import services\n"
                        f"user = get_user_model().objects.get(username={username!r})\n"
                        "print(services.submit(user, 'live-probe').pk)")


def wait_for_outcome(live: LiveBastion, job_id: str, timeout: float = 40.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, message = django(live, "from bastion.jobs.models import Job\n"
                                          f"job = Job.objects.get(pk={job_id!r})\n"
                                          "print(job.status + '|' + job.message)").partition("|")
        if status not in ("queued", "running") or time.monotonic() > deadline:
            return status, message
        time.sleep(0.5)


def worker_pids(live: LiveBastion) -> list[int]:
    return [int(pid) for pid in STARTED.findall(live.log_file.read_text(errors="replace"))]


def test_serve_runs_a_worker_that_runs_submitted_jobs_and_is_restarted_when_it_dies(live_bastion: LiveBastion):
    live_bastion.create_admin("jobs-live", NEW_PASSWORD)
    pids = worker_pids(live_bastion)
    assert len(pids) == 1, live_bastion.log_file.read_text(errors="replace")[-3000:]

    job_id = submit_probe(live_bastion, "jobs-live")
    status, message = wait_for_outcome(live_bastion, job_id)
    assert status == "failed" and "no runner for jobs of kind “live-probe”" in message

    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while len(worker_pids(live_bastion)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(worker_pids(live_bastion)) == 2, live_bastion.log_file.read_text(errors="replace")[-3000:]
    status, _message = wait_for_outcome(live_bastion, submit_probe(live_bastion, "jobs-live"))
    assert status == "failed"
