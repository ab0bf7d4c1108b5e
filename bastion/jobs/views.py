"""The Jobs pages: the list, one job's progress (with its JSON for polling), cancel and download.

Permission (T20): signed in; each job is then shown only to its owner and to users holding manage (another
user's job is a 404, so its existence is not revealed). Cancel: owner or manage. Download: the owner only, while
their grants still allow what the file holds (the job kind's download check).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import signed_in
from bastion.access.policy import visible_tables
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.explorer.links import page_url
from bastion.jobs import display, runners, services
from bastion.jobs.models import Job, JobKind, JobStatus
from bastion.web.errors import error_response

PER_PAGE = 50


def _job_or_404(request: HttpRequest, pk: Any) -> Job:
    job = services.visible_job(request.user, pk)
    if job is None:
        raise Http404("no such job")
    return job


@require_safe
@signed_in
def job_list(request: HttpRequest) -> HttpResponse:
    """Permission: signed in; the user's own jobs, or everybody's (?who=all) for users holding manage."""
    may_see_all = services.may_see_all(request.user)
    everyone = may_see_all and request.GET.get("who") == "all"
    page = Paginator(services.visible_jobs(request.user, everyone=everyone), PER_PAGE).get_page(
        request.GET.get("page"))
    rows = [(job, display.state(job)) for job in page.object_list]
    return render(request, "jobs/list.html", {
        "page": page, "rows": rows, "everyone": everyone, "may_see_all": may_see_all,
    })


@require_safe
@signed_in
def job_detail(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Permission: signed in; the owner's or a manager's job, else 404."""
    job = _job_or_404(request, job_id)
    own = job.owner_id == request.user.pk
    return render(request, "jobs/detail.html", {
        "job": job, "state": display.state(job), "own": own,
        "may_download": own and job.kind == JobKind.EXPORT,
        "file_label": job.params.get("download_name") or job.params.get("original_name") or "",
        "idle_seconds": settings.SESSION_IDLE_TIMEOUT,  # jobs.js pauses polling after half of it unused (T10)
        "table_url": _table_url(request.user, job),
    })


def _table_url(user: Any, job: Job) -> str:
    """The job's table page, when the user may open it (a link is no wider than the explorer's own)."""
    if job.connection is None or not job.table:
        return ""
    schema = job.schema or None
    if not visible_tables(user, job.connection.pk, schema, [job.table]):
        return ""
    return page_url("table", job.connection.pk, schema, job.table)


@require_safe
@signed_in
def job_status(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Permission: as job_detail. The job's state as JSON, read-only, for the page's polling script."""
    response = JsonResponse(display.state(_job_or_404(request, job_id)))
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@signed_in
def job_cancel(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Permission: signed in; the owner or a user holding manage (others: 404). Audited ("job.cancel")."""
    job = _job_or_404(request, job_id)
    back = reverse("jobs:list") if request.POST.get("back") == "list" else reverse("jobs:detail", args=[job.pk])
    if job.is_final:
        messages.info(request, "This job had already finished.")
        return redirect(back)
    services.cancel(job, request.user, request=request)
    if job.status == JobStatus.CANCELLED:
        messages.success(request, "Job cancelled before it started.")
    elif job.is_final:
        messages.info(request, "This job had already finished.")
    else:
        messages.success(request, "Cancelling: the job stops at its next batch of rows.")
    return redirect(back)


@require_POST
@signed_in
def job_download(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Permission: signed in; the job's owner only (managers see the job, not its data). Audited."""
    job = _job_or_404(request, job_id)
    if job.owner_id != request.user.pk:
        return error_response(request, 403, "Only the user who ran this export may download its file.")
    back = reverse("jobs:detail", args=[job.pk])
    if job.kind != JobKind.EXPORT or job.status != JobStatus.SUCCEEDED:
        messages.error(request, "This job has no file to download.")
        return redirect(back)
    if not display.downloadable(job):
        messages.error(request, "The file of this export has expired and was deleted. Run the export again.")
        return redirect(back)
    problem = runners.download_problem(job, request.user)
    if problem:  # the grants that let the file be written may have changed since (T20, T31)
        record("export.download", request=request, target=services.target_of(job), outcome=Outcome.DENIED,
               details={"job": str(job.pk), "connection_id": job.connection_id, "schema": job.schema,
                        "table": job.table, "message": problem})
        return error_response(request, 403, problem)
    try:
        handle = services.job_path(job).open("rb")
    except (OSError, ValueError):
        messages.error(request, "The file of this export is missing. Run the export again.")
        return redirect(back)
    name = job.params.get("download_name") or f"{job.table or 'export'}-{str(job.pk)[:8]}"
    record("export.download", request=request, target=services.target_of(job), details={
        "job": str(job.pk), "connection_id": job.connection_id, "schema": job.schema, "table": job.table,
        "bytes": job.file_size, "file": name})
    response = FileResponse(handle, as_attachment=True, filename=name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
