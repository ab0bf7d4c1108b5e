"""A table export run as a background job: the file is written into the data directory's jobs folder and kept
for BASTION_JOB_FILE_HOURS, to be downloaded from the job's page (T28, T31, T33, T36).

The export page queues it (a POST, audited as "export.submit", after the same re-authentication as a
streamed export); the runner checks the user's grants again when it starts, writes exactly what the streamed
export would write (same statement, same masking, same formats) and records the same "export.table" event,
naming the job. Progress is the rows written, against a bounded count of the rows to write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, QueryDict
from django.utils.text import slugify
from sqlalchemy.exc import DBAPIError

from bastion.access.policy import column_modes
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections.limits import is_timeout
from bastion.explorer.browse import BrowseParams, Export
from bastion.explorer.schema import TableInfo, TableNotFound, resolve_table
from bastion.explorer.views import UNREACHABLE
from bastion.jobs import services as jobs
from bastion.jobs.runners import JobCancelled, JobFailed, Progress
from bastion.transfer import export as exports

KIND = "export"
SUBMITTED = "export.submit"
COUNT_AT_MOST = 50_000_000  # rows counted (within the count's time limit) for the progress bar


def download_name(info: TableInfo, fmt: str) -> str:
    stem = f"{slugify(info.connection.name) or 'database'}-{slugify(info.name) or 'table'}"
    return f"{stem}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.{fmt}"


def submit(request: HttpRequest, info: TableInfo, export: Export, fmt: str) -> Any:
    """Queue the export of the view the request's query string describes; raises jobs.JobRefused (audited)."""
    details = {"connection_id": info.connection.pk, "schema": info.schema, "table": info.name, "format": fmt,
               "columns": [c.name for c in export.columns], "filtered": export.filtered}
    name, _ = jobs.new_job_file()
    params = {"format": fmt, "query": request.GET.urlencode(), "download_name": download_name(info, fmt)}
    try:
        job = jobs.submit(request.user, KIND, connection=info.connection, schema=info.schema, table=info.name,
                          params=params, file_name=name)
    except jobs.JobRefused as exc:
        jobs.delete_file(name)
        record(SUBMITTED, request=request, target=exports.table_label(info), outcome=Outcome.FAILURE,
               details={**details, "message": str(exc)})
        raise
    record(SUBMITTED, request=request, target=exports.table_label(info), details={**details, "job": str(job.pk)})
    return job


def _refused(job: Any, message: str, outcome: str = Outcome.FAILURE) -> JobFailed:
    """The export stops before a row is read: its one "export.table" event says so (T33); the failure to raise."""
    where = f"{job.schema}.{job.table}" if job.schema else job.table
    record(exports.EXPORTED, actor=job.owner, outcome=outcome,
           target=f"{job.connection.name}: {where}" if job.connection is not None else where, details={
               "connection_id": job.connection_id, "schema": job.schema or None, "table": job.table,
               "format": job.params.get("format", "csv"), "rows": 0, "bytes": 0, "message": message,
               "job": str(job.pk)})
    return JobFailed(message)


def _prepared(job: Any) -> tuple[TableInfo, Export, dict[str, Any]]:
    user = job.owner
    try:
        info = resolve_table(job.connection, job.schema or None, job.table)
    except TableNotFound:
        raise _refused(job, "The table no longer exists.") from None
    if not user.is_active or not exports.may_export(user, info):
        raise _refused(job, "Your role no longer may export this table.", Outcome.DENIED)
    views = column_modes(user, info.connection.pk, info.schema, info.name, info.column_names)
    try:
        export = exports.prepare(info, views, BrowseParams.from_query(QueryDict(job.params.get("query", ""))))
    except exports.ExportRefused as exc:
        raise _refused(job, str(exc)) from None
    return info, export, views


def _modes(views: dict[str, Any], columns: list[str]) -> dict[str, list[str]]:
    return {name: [str(views[name].mode), str(views[name].mask_rule or "")] for name in columns}


def download_problem(job: Any, user: Any) -> str | None:
    """Why ``user`` may not download this export's kept file now: the export grant is gone, or a column the
    file holds in clear (or masked one way) is now masked or hidden for them. None: they may."""
    if job.connection is None:
        return "The connection this file was exported from was removed, so its file cannot be downloaded."
    try:
        info = resolve_table(job.connection, job.schema or None, job.table)
    except (TableNotFound, *UNREACHABLE):
        info = None
    if info is None or not user.is_active or not exports.may_export(user, info):
        return "Your role no longer may export this table, so its kept file cannot be downloaded."
    written = job.params.get("written_modes") or {}
    now = _modes(column_modes(user, info.connection.pk, info.schema, info.name, list(written)), list(written))
    if not written or now != written:
        return ("What your role shows of this table's columns has changed since the file was written, so it cannot "
                "be downloaded. Run the export again.")
    return None


def run(job: Any, progress: Progress) -> str:
    """The job runner for "export" jobs (registered in apps.ready); the success message."""
    info, export, views = _prepared(job)
    job.params = {**job.params, "written_modes": _modes(views, [c.name for c in export.columns])}
    type(job).objects.filter(pk=job.pk).update(params=job.params)
    fmt = job.params.get("format", "csv")
    counted = exports.rows_to_export(info, export, COUNT_AT_MOST)
    total = None if counted is None or counted.more_than else counted.value
    try:
        body = exports.ExportStream(None, info, export, views, fmt, exports.open_cursor(info, export),
                                    actor=job.owner, job=job)
    except DBAPIError as exc:
        raise _refused(job, _failure(exc)) from None
    try:
        with jobs.job_path(job).open("wb") as out:
            for chunk in body:
                out.write(chunk)
                progress.update(body.rows, body.bytes, rows_total=total)
                if progress.should_stop():
                    body.message = "cancelled"
                    raise JobCancelled()
    except DBAPIError as exc:
        raise JobFailed(_failure(exc)) from None
    finally:
        body.close()  # the cursor and connection closed, the one audit event written
    progress.update(body.rows, body.bytes, rows_total=body.rows)
    return f"Exported {body.rows:,} row{'s' if body.rows != 1 else ''} ({body.bytes:,} bytes)."


def _failure(exc: DBAPIError) -> str:
    if is_timeout(exc):
        return "The export took longer than BASTION_EXPORT_TIMEOUT allows and was stopped; no file was kept."
    return "The database reported an error while the rows were read; no file was kept."
