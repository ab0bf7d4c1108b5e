"""How a job's progress reads: percent, rows done, rate and time left; one source for the page and its JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.dateformat import format as format_date

from bastion.jobs.models import Job, JobKind, JobStatus

BADGE = {JobStatus.SUCCEEDED: "success", JobStatus.FAILED: "failure", JobStatus.CANCELLED: "denied"}


def duration(seconds: float) -> str:
    """45 s, 3 min 20 s, 2 h 5 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def percent(job: Job) -> float | None:
    """How far the job is, from bytes when their total is known, else from rows; None when unknown."""
    if job.status == JobStatus.SUCCEEDED:
        return 100.0
    for done, total in ((job.bytes_done, job.bytes_total), (job.rows_done, job.rows_total)):
        if total:
            return round(min(100.0, max(0.0, 100.0 * done / total)), 1)
    return 0.0 if job.status == JobStatus.QUEUED else None


def _elapsed(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    return max(0.0, ((job.finished_at or now) - job.started_at).total_seconds())


def _time_left(job: Job, elapsed: float) -> float | None:
    for done, total in ((job.bytes_done, job.bytes_total), (job.rows_done, job.rows_total)):
        if total and done > 0 and elapsed > 0:
            return max(0.0, (total - done) / (done / elapsed))
    return None


def summary(job: Job, now: datetime | None = None) -> str:
    """One line: rows done (of total), rate, time left; or, once finished, how long it took."""
    now = now or timezone.now()
    if job.status == JobStatus.QUEUED:
        return "Waiting for a worker to start it."
    elapsed = _elapsed(job, now)
    rows = f"{job.rows_done:,} row{'s' if job.rows_done != 1 else ''}"
    parts = [f"{rows} of {job.rows_total:,}" if job.rows_total else f"{rows} done"]
    if job.bytes_total:
        parts.append(f"{filesizeformat(job.bytes_done)} of {filesizeformat(job.bytes_total)}")
    if elapsed:
        parts.append(f"{job.rows_done / elapsed:,.0f} rows/s")
    if job.is_final:
        if elapsed is not None:
            parts.append(f"took {duration(elapsed)}")
    else:
        left = _time_left(job, elapsed or 0.0)
        parts.append(f"about {duration(left)} left" if left is not None else "time left unknown")
    text = " · ".join(parts)
    return f"Cancelling… {text}" if job.cancel_requested and not job.is_final else text


def downloadable(job: Job, now: datetime | None = None) -> bool:
    return (job.kind == JobKind.EXPORT and job.status == JobStatus.SUCCEEDED and bool(job.file_name)
            and not job.file_expired(now))


def file_text(job: Job) -> str:
    if job.expires_at is None:
        return ""
    until = format_date(timezone.localtime(job.expires_at), "Y-m-d H:i T")
    return f"{filesizeformat(job.file_size)}, kept until {until}"


def state(job: Job, now: datetime | None = None) -> dict[str, Any]:
    """What the job page shows, as plain values (also the /status/ JSON)."""
    now = now or timezone.now()
    return {
        "status": job.status,
        "status_label": JobStatus(job.status).label,
        "badge": BADGE.get(job.status, ""),
        "final": job.is_final,
        "percent": percent(job),
        "summary": summary(job, now),
        "message": job.message,
        "error": job.error or {},
        "cancel_requested": job.cancel_requested,
        "downloadable": downloadable(job, now),
        "file": file_text(job) if downloadable(job, now) else "",
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "bytes_done": job.bytes_done,
        "bytes_total": job.bytes_total,
        "started": moment(job.started_at),
        "finished": moment(job.finished_at),
    }


def moment(when: datetime | None) -> str:
    """A time as the job page shows it (local time, to the second), or a dash."""
    return format_date(timezone.localtime(when), "Y-m-d H:i:s T") if when else "—"
