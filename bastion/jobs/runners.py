"""What each kind of job does, and how a runner reports progress and stops.

A runner is ``fn(job, progress) -> str``: it does the work, calls ``progress.update(...)`` as it goes, checks
``progress.should_stop()`` between batches (raising JobCancelled when it says so), raises JobFailed with a
plain message (and the row/column at fault) when the work cannot be done, and returns the success message.
Apps register their runners in ``AppConfig.ready()`` so that every process, web or worker, knows them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from bastion.jobs.models import FINAL_STATUSES, Job, JobKind
from bastion.logs import get_logger

log = get_logger("bastion.jobs")

Runner = Callable[[Job, "Progress"], str]
_RUNNERS: dict[str, Runner] = {}

WRITE_EVERY = 0.5  # seconds between progress writes (and cancel checks): about twice a second
# Why should_stop() said stop (Progress.stop_reason); tasks.run_job words the outcome after it.
STOP_CANCELLED = "cancelled"  # the owner (or a manager) asked
STOP_OWNER_INACTIVE = "owner_inactive"  # the owner's account was deactivated while the job ran
STOP_FINAL = "final"  # the job ended without its runner (the sweep took its worker for dead), or its row is gone


DownloadCheck = Callable[[Job, Any], "str | None"]
_DOWNLOAD_CHECKS: dict[str, DownloadCheck] = {}


def register(kind: str, fn: Runner, *, download_check: DownloadCheck | None = None) -> None:
    """Make ``fn`` the runner of jobs of ``kind``; registering a kind again replaces its runner.

    ``download_check(job, user)``: for kinds that keep a file, why ``user`` may not download it now (None: they
    may); asked at every download, because grants can change while the file is kept."""
    _RUNNERS[kind] = fn
    if download_check is not None:
        _DOWNLOAD_CHECKS[kind] = download_check


def download_problem(job: Job, user: Any) -> str | None:
    """Why ``user`` may not download ``job``'s file now (None: they may). Fails closed: a check that breaks (the
    job's connection removed since, an unreachable database) refuses the download instead of answering 500 (T20)."""
    check = _DOWNLOAD_CHECKS.get(job.kind)
    if check is None:
        return "Files of this kind of job cannot be downloaded."
    try:
        return check(job, user)
    except Exception:
        log.exception("job_download_check_failed", job=str(job.pk), kind=job.kind)
        return "Bastion could not check your access to this file now, so it cannot be downloaded. Try again later."


def unregister(kind: str) -> None:
    """For tests that register a runner of their own."""
    _RUNNERS.pop(kind, None)


def runner_for(kind: str) -> Runner | None:
    return _RUNNERS.get(kind)


class JobCancelled(Exception):
    """Raised by a runner that stopped because the job's cancellation was requested.

    The message, if given, replaces the default outcome message ("Cancelled.").
    """


class JobFailed(Exception):
    """The job cannot be done: ``message`` for the user, and where: ``row`` (1-based), ``column``, ``reason``."""

    def __init__(self, message: str, *, row: int | None = None, column: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.column = column
        self.reason = reason

    def error(self) -> dict[str, Any]:
        """The Job.error value: {"row", "column", "reason"} when the failure points somewhere, else {}."""
        if self.row is None and not self.column and not self.reason:
            return {}
        return {"row": self.row, "column": self.column, "reason": self.reason or self.message}


class Progress:
    """A runner's progress, written to the job's row at most every WRITE_EVERY seconds (plus the final one).

    ``should_stop`` re-reads the job's row at the same pace, so a runner may call both once per batch, however
    small the batches. It says stop when the cancellation was requested, when the owner's account was deactivated
    (T20: a fired employee's import does not go on writing), and when the job already ended without the runner
    (the sweep took its worker for dead and told the user "nothing was written": the runner must not then write).
    ``stop_reason`` says which. A job that writes a kept file (an export) fails when the disk runs low (T28).
    """

    def __init__(self, job: Job, *, every: float = WRITE_EVERY, clock: Callable[[], float] = time.monotonic):
        self.job_id = job.pk
        self.rows_done = job.rows_done
        self.bytes_done = job.bytes_done
        self.rows_total = job.rows_total
        self.bytes_total = job.bytes_total
        self.writes = 0
        self._every = every
        self._clock = clock
        self._written_at: float | None = None
        self._checked_at: float | None = None
        self._stop = job.cancel_requested
        self.stop_reason = STOP_CANCELLED if job.cancel_requested else ""
        self._dirty = False
        self._keeps_file = job.kind == JobKind.EXPORT and bool(job.file_name)

    def update(self, rows_done: int, bytes_done: int | None = None, rows_total: int | None = None,
               bytes_total: int | None = None) -> None:
        self.rows_done = rows_done
        if bytes_done is not None:
            self.bytes_done = bytes_done
        if rows_total is not None:
            self.rows_total = rows_total
        if bytes_total is not None:
            self.bytes_total = bytes_total
        self._dirty = True
        now = self._clock()
        if self._written_at is None or now - self._written_at >= self._every:
            self.flush(now)
            if self._keeps_file:
                self._check_disk()

    def _check_disk(self) -> None:
        from bastion.jobs.services import jobs_dir

        # The jobs folder shares its disk with the metadata database and the audit log, which must stay writable.
        reserve = settings.JOBS_DISK_RESERVE_MB * 1024 * 1024
        if shutil.disk_usage(jobs_dir()).free < reserve:
            raise JobFailed("The disk of Bastion's data directory is nearly full, so the export was stopped and no "
                            "file was kept. Export fewer rows, or ask an administrator to free some space.")

    def flush(self, now: float | None = None) -> None:
        """Write the latest figures now (the job machinery calls it once more when the runner returns)."""
        if not self._dirty:
            return
        Job.objects.filter(pk=self.job_id).update(**self.figures(), heartbeat_at=timezone.now())
        self._written_at = self._clock() if now is None else now
        self._dirty = False
        self.writes += 1

    def figures(self) -> dict[str, int | None]:
        return {"rows_done": self.rows_done, "bytes_done": self.bytes_done,
                "rows_total": self.rows_total, "bytes_total": self.bytes_total}

    def should_stop(self) -> bool:
        """True once the job must stop (see stop_reason); the runner then raises JobCancelled."""
        if self._stop:
            return True
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._every:
            self._checked_at = now
            row = Job.objects.filter(pk=self.job_id).values_list("cancel_requested", "status",
                                                                  "owner__is_active").first()
            if row is None or row[1] in FINAL_STATUSES:
                self.stop_reason = STOP_FINAL
            elif not row[2]:
                self.stop_reason = STOP_OWNER_INACTIVE
            elif row[0]:
                self.stop_reason = STOP_CANCELLED
            self._stop = bool(self.stop_reason)
        return self._stop
