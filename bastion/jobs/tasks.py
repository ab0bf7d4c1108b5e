"""The one task of the queue: run a job by its id.

Everything the pages show lives in the Job row (status, progress, outcome), so any backend that can call
``run_job(job_id)`` will do: the embedded database queue, or a Redis one on several hosts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.utils import timezone
from django_tasks import task

from bastion.jobs import runners, services
from bastion.jobs.models import Job, JobStatus
from bastion.logs import get_logger

log = get_logger("bastion.jobs")

UNEXPECTED = ("The job stopped on an unexpected error; the log has the details (job {id}). "
              "Nothing of an import was written.")
STOPPED = "Interrupted: the worker was stopped while the job ran. Nothing of an import was written."
CANCELLED = "Cancelled."
OWNER_INACTIVE = ("Stopped: the account of the user who started this job was deactivated while it ran. "
                  "Nothing of an import was written.")


@task()
def run_job(job_id: str) -> str:
    """Mark the job running, call its kind's runner, record the outcome; returns the final status."""
    job = _load(job_id)
    if job is None:
        log.warning("job_missing", job=job_id)
        return "missing"
    now = timezone.now()
    if not Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now):
        return job.status  # cancelled while queued (its files are already gone), or run before
    job.refresh_from_db()
    progress = runners.Progress(job)
    try:
        with _heartbeat(job.pk):
            runner = runners.runner_for(job.kind)
            if runner is None:
                raise runners.JobFailed(f"Bastion has no runner for jobs of kind “{job.kind}”.")
            outcome, message, error = JobStatus.SUCCEEDED, runner(job, progress), {}
    except runners.JobCancelled as exc:
        if progress.stop_reason == runners.STOP_FINAL:
            # The sweep already failed the job (its worker looked dead) and told the user nothing was written; the
            # runner stopped without writing, so that stays the outcome. Its file goes (the sweep's finish already
            # removed the name; a runner may have made the file again since).
            services.delete_file(job.file_name)
            log.warning("job_stopped_after_it_ended", job=str(job.pk), kind=job.kind)
            return Job.objects.filter(pk=job.pk).values_list("status", flat=True).first() or "missing"
        if progress.stop_reason == runners.STOP_OWNER_INACTIVE:
            outcome, message, error = JobStatus.CANCELLED, OWNER_INACTIVE, {}
        else:
            outcome, message, error = JobStatus.CANCELLED, str(exc) or CANCELLED, {}
    except runners.JobFailed as exc:
        outcome, message, error = JobStatus.FAILED, exc.message, exc.error()
    except Exception:
        log.exception("job_failed_unexpectedly", job=str(job.pk), kind=job.kind)
        outcome, message, error = JobStatus.FAILED, UNEXPECTED.format(id=job.pk), {}
    except BaseException:  # the worker is being stopped (SystemExit, KeyboardInterrupt): say so, then go
        services.finish(job, JobStatus.FAILED, STOPPED, figures=progress.figures())
        raise
    services.finish(job, outcome, message, error=error, figures=progress.figures())
    log.info("job_finished", job=str(job.pk), kind=job.kind, status=str(outcome), rows=progress.rows_done)
    return outcome


def _load(job_id: str, attempts: int = 10, pause: float = 0.5) -> Job | None:
    # With an external queue, a job submitted inside a caller's transaction may reach the worker first.
    for attempt in range(attempts):
        job = Job.objects.select_related("owner", "connection").filter(pk=job_id).first()
        if job is not None or attempt == attempts - 1:
            return job
        time.sleep(pause)
    return None


@contextmanager
def _heartbeat(job_id: Any, every: float = services.HEARTBEAT_SECONDS) -> Iterator[None]:
    """Refresh the job's heartbeat from a thread while the runner works (even inside one long statement)."""
    stop = threading.Event()

    def beat() -> None:
        # One failed write (a locked SQLite file, a dropped connection) must not end the beating: a silent job is
        # failed by the sweep after STALE_SECONDS even though its runner is well (and then stopped by it).
        try:
            while not stop.wait(every):
                try:
                    Job.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
                except Exception:
                    log.exception("job_heartbeat_failed", job=str(job_id))
                    connections.close_all()  # the next beat opens a fresh connection
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, name=f"job-heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
