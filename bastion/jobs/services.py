"""Submitting, cancelling and tidying background jobs, and the files they keep in the data directory.

Views and other apps call these; nothing else writes a Job row except the task that runs it (tasks.py).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bastion.access.models import Action
from bastion.access.policy import check
from bastion.audit.services import record
from bastion.datadir import FILE_MODE, make_private_dir
from bastion.jobs.models import ACTIVE_STATUSES, Job, JobKind, JobStatus
from bastion.logs import get_logger

log = get_logger("bastion.jobs")

FILE_NAME = re.compile(r"[0-9a-f]{32}")
# Django's temporary upload files (FILE_UPLOAD_TEMP_DIR is the jobs folder): left behind only by a killed process.
UPLOAD_LEFTOVER = re.compile(r"tmp[\w-]+\.upload(\.\w+)?")
# A running job's worker refreshes heartbeat_at every HEARTBEAT_SECONDS; one silent for STALE_SECONDS is dead.
HEARTBEAT_SECONDS = 15
STALE_SECONDS = 120
# Files in the jobs folder that no job names (an upload never imported) go after this long at least.
ORPHAN_MIN_SECONDS = 24 * 3600
TASK_RESULT_DAYS = 7  # the queue's own records; each job's outcome lives on in its Job row
INTERRUPTED = {
    JobKind.IMPORT: "Interrupted: the worker running this import stopped. Nothing was written "
                    "(an import is one transaction). Start the import again.",
    JobKind.EXPORT: "Interrupted: the worker running this export stopped. No file was kept. Run the export again.",
}
INTERRUPTED_OTHER = "Interrupted: the worker running this job stopped. Start it again."


class JobRefused(Exception):
    """The job cannot be submitted; the message says why, plainly."""


class TooManyJobs(JobRefused):
    """The user already has BASTION_JOBS_MAX_RUNNING jobs queued or running."""


class FileInUse(JobRefused):
    """Another job already took this file (an upload is imported once: a double click starts one job)."""


# --- files -----------------------------------------------------------------------------------------
def jobs_dir() -> Path:
    """The data directory's jobs folder, created (0700) on first use."""
    folder = settings.DATA.jobs_dir
    make_private_dir(folder)
    return folder


def job_path(job_or_name: Job | str) -> Path:
    """The path of a job's file (or of a file name made by new_job_file); refuses any other name."""
    name = job_or_name.file_name if isinstance(job_or_name, Job) else job_or_name
    if not FILE_NAME.fullmatch(name or ""):
        raise ValueError("not a job file name")
    return jobs_dir() / name


def new_job_file() -> tuple[str, Path]:
    """A fresh, empty file (mode 0600) in the jobs folder: its name (for Job.file_name) and path."""
    name = secrets.token_hex(16)
    path = jobs_dir() / name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    return name, path


def delete_file(name: str) -> None:
    """Remove a job file if it is there (a missing file is not an error)."""
    if not name:
        return
    try:
        job_path(name).unlink(missing_ok=True)
    except ValueError:
        log.warning("job_file_name_refused", file_name=name[:80])


# --- who sees what ------------------------------------------------------------------------------------
def may_see_all(user: Any) -> bool:
    """Users holding manage see (and may cancel) everybody's jobs; others only their own."""
    return check(user, Action.MANAGE)


def visible_jobs(user: Any, *, everyone: bool = False) -> QuerySet[Job]:
    """The user's jobs, or everybody's when ``everyone`` and the user may see them; newest first."""
    jobs = Job.objects.select_related("owner", "connection").order_by("-created_at")
    return jobs if everyone and may_see_all(user) else jobs.filter(owner=user)


def visible_job(user: Any, job_id: Any) -> Job | None:
    """The job if ``user`` may see it, else None (callers answer 404: another user's job is not revealed)."""
    job = Job.objects.select_related("owner", "connection").filter(pk=job_id).first()
    if job is None or (job.owner_id != user.pk and not may_see_all(user)):
        return None
    return job


# --- submit and cancel ---------------------------------------------------------------------------------
def _too_many(user: Any) -> str | None:
    limit = settings.JOBS_MAX_RUNNING
    active = Job.objects.filter(owner=user, status__in=ACTIVE_STATUSES).count()
    if active < limit:
        return None
    return (f"You already have {active} job{'s' if active != 1 else ''} queued or running, the most one user may "
            f"have at once ({limit}). Wait for one to finish, or cancel one on the Jobs page.")


def check_room(user: Any) -> None:
    """Raise TooManyJobs if ``user`` may not submit another job now (submit checks again, atomically)."""
    problem = _too_many(user)
    if problem:
        raise TooManyJobs(problem)


def submit(user: Any, kind: str, *, connection: Any = None, schema: str | None = None, table: str = "",
           params: dict[str, Any] | None = None, bytes_total: int | None = None, rows_total: int | None = None,
           file_name: str = "") -> Job:
    """Create a queued job and put it on the task queue; raises TooManyJobs past BASTION_JOBS_MAX_RUNNING, FileInUse
    when another job has ``file_name``.

    The limit is checked with the user's row locked (PostgreSQL; SQLite's IMMEDIATE transactions serialise
    writers), so parallel submissions cannot pass it together. The job is committed before it is enqueued,
    so a worker of any backend finds it.
    """
    from bastion.jobs.tasks import run_job

    if not kind or len(kind) > 16:
        raise ValueError("a job kind is a short name")
    if file_name:
        job_path(file_name)  # refuses names new_job_file did not make
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        problem = _too_many(user)
        if problem:
            raise TooManyJobs(problem)
        try:
            with transaction.atomic():
                job = Job.objects.create(owner=user, kind=kind, connection=connection, schema=schema or "",
                                         table=table, params=params or {}, bytes_total=bytes_total,
                                         rows_total=rows_total, file_name=file_name)
        except IntegrityError:  # job_file_once: the file is another job's
            raise FileInUse("This file is already being imported by another job: see the Jobs page.") from None
    try:
        result = run_job.enqueue(str(job.pk))
    except Exception:
        log.exception("job_enqueue_failed", job=str(job.pk))
        finish(job, JobStatus.FAILED, "The job could not be queued. Try again; if it keeps failing, tell an "
                                      "administrator (the log says why).")
        raise
    job.task_id = str(result.id)
    Job.objects.filter(pk=job.pk).update(task_id=job.task_id)
    return job


def cancel(job: Job, user: Any, *, request: HttpRequest | None = None) -> None:
    """Ask for ``job`` to stop: a queued job is cancelled at once, a running one when its runner next checks.

    ``user`` must own the job or hold manage (views check first; this checks again). Writes one audit event
    ("job.cancel") when something changed; a job already finished is left as it is.
    """
    if job.owner_id != user.pk and not may_see_all(user):
        raise PermissionError("not your job")
    if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED,
                                                                     cancel_requested=True):
        finish(job, JobStatus.CANCELLED, "Cancelled before it started: nothing was done.")
        was = JobStatus.QUEUED
    elif Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, cancel_requested=False).update(
            cancel_requested=True):
        was = JobStatus.RUNNING
    else:
        job.refresh_from_db()
        return
    job.refresh_from_db()
    record("job.cancel", request=request, actor=user, target=target_of(job),
           details={"job": str(job.pk), "kind": job.kind, "owner": job.owner.get_username(), "was": was,
                    "status": job.status})


def target_of(job: Job) -> str:
    where = job.table_label
    if job.connection is not None:
        return f"{job.connection.name}: {where}" if where else job.connection.name
    return where or f"job {job.pk}"


def finish(job: Job, status: str, message: str, *, error: dict[str, Any] | None = None,
           figures: dict[str, int | None] | None = None) -> None:
    """Record a job's outcome; an import's input file goes, an export's file is kept only if it succeeded."""
    now = timezone.now()
    current = Job.objects.filter(pk=job.pk).values_list("file_name", flat=True).first()
    file_name = job.file_name if current is None else current
    fields: dict[str, Any] = {"status": status, "message": message, "error": error or {}, "finished_at": now,
                              **(figures or {})}
    if job.kind == JobKind.EXPORT and status == JobStatus.SUCCEEDED and file_name:
        try:
            fields["file_size"] = job_path(file_name).stat().st_size
            fields["expires_at"] = now + timedelta(seconds=settings.JOB_FILE_SECONDS)
        except (OSError, ValueError):
            fields["file_name"] = ""
    else:
        delete_file(file_name)
        fields["file_name"] = ""
    Job.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


# --- the worker's sweeps -----------------------------------------------------------------------------------
def mark_interrupted(*, stale_after: float = STALE_SECONDS, now: datetime | None = None) -> int:
    """Running jobs whose worker stopped beating for ``stale_after`` seconds become failed; how many.

    A worker that dies (killed, out of memory, machine restarted) cannot say so itself; any worker's sweep
    (at its start and every minute) finds its jobs by their silent heartbeat.
    """
    cutoff = (now or timezone.now()) - timedelta(seconds=stale_after)
    stale = Job.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    count = 0
    for job in stale:
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).filter(
                Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)).update(status=JobStatus.FAILED):
            finish(job, JobStatus.FAILED, INTERRUPTED.get(job.kind, INTERRUPTED_OTHER))
            log.warning("job_interrupted", job=str(job.pk), kind=job.kind)
            count += 1
    return count


def cleanup_expired_files(*, now: datetime | None = None) -> int:
    """Delete kept files past their expiry, and files no job names (and uploads a killed process left half-way)
    that are older than a day; how many."""
    now = now or timezone.now()
    deleted = 0
    for job in Job.objects.filter(expires_at__lte=now).exclude(file_name=""):
        if Job.objects.filter(pk=job.pk, file_name=job.file_name).update(file_name="", file_size=0):
            delete_file(job.file_name)
            deleted += 1
    named = set(Job.objects.exclude(file_name="").values_list("file_name", flat=True))
    oldest = time.time() - max(ORPHAN_MIN_SECONDS, settings.JOB_FILE_SECONDS)
    folder = jobs_dir()
    for path in folder.iterdir():
        unnamed = FILE_NAME.fullmatch(path.name) and path.name not in named
        if (unnamed or UPLOAD_LEFTOVER.fullmatch(path.name)) and path.stat().st_mtime < oldest:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def prune_task_results(*, now: datetime | None = None) -> int:
    """Delete the database queue's records of tasks finished over TASK_RESULT_DAYS ago (the Job rows stay)."""
    from django_tasks_db.models import DBTaskResult

    cutoff = (now or timezone.now()) - timedelta(days=TASK_RESULT_DAYS)
    deleted, _ = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff).delete()
    return deleted


def sweep() -> None:
    """The worker's periodic tidying: interrupted jobs marked failed, expired files deleted, old queue records."""
    interrupted = mark_interrupted()
    deleted = cleanup_expired_files()
    pruned = prune_task_results() if "django_tasks_db" in settings.TASKS["default"]["BACKEND"] else 0
    if interrupted or deleted or pruned:
        log.info("jobs_sweep", interrupted=interrupted, files_deleted=deleted, task_results_pruned=pruned)
