"""What each kind of job does, and how a runner reports progress and stops.

A runner is ``fn(job, progress) -> str``: it does the work, calls ``progress.update(...)`` as it goes, checks
``progress.should_stop()`` between batches (raising JobCancelled when it says so), raises JobFailed with a
plain message (and the row/column at fault) when the work cannot be done, and returns the success message.
Apps register their runners in ``AppConfig.ready()`` so that every process, web or worker, knows them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from bastion.jobs.models import Job

Runner = Callable[[Job, "Progress"], str]
_RUNNERS: dict[str, Runner] = {}

WRITE_EVERY = 0.5  # seconds between progress writes (and cancel checks): about twice a second


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
    check = _DOWNLOAD_CHECKS.get(job.kind)
    return check(job, user) if check is not None else "Files of this kind of job cannot be downloaded."


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

    ``should_stop`` re-reads the job's cancel_requested flag at the same pace, so a runner may call both
    once per batch, however small the batches.
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
        self._dirty = False

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
        """True once the job's cancellation was requested; the runner then raises JobCancelled."""
        if self._stop:
            return True
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._every:
            self._checked_at = now
            self._stop = Job.objects.filter(pk=self.job_id, cancel_requested=True).exists()
        return self._stop
