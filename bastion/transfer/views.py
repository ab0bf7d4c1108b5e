"""The export page of a table: what will be written, in which format; a POST streams the file.

Permission: ``export`` on the table (T20), which must be one the user may see (404 otherwise).
The view's filters, search and sort come in the query string, as on the table page, so
"Export…" exports exactly the rows the user was looking at. A GET only shows the page; the
file comes from a POST (CSRF-protected), which asks for the password again first when it
would carry off many rows (BASTION_EXPORT_REAUTH_ROWS): streamed at once, or (``run=job``)
written by a background job that keeps it for download from the job's page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action, ColumnMode
from bastion.explorer.access import OpenTable, table_resource
from bastion.explorer.browse import BrowseParams, Export
from bastion.explorer.views import UNREACHABLE, problem_page, table_context, table_view
from bastion.jobs.services import JobRefused
from bastion.transfer import export as service
from bastion.transfer import export_job, formats


def _page(request: HttpRequest, opened: OpenTable, export: Export | None, *, status: int = 200,
          problem: str | None = None, fmt: str = "csv") -> HttpResponse:
    views = opened.access.columns
    columns = [(c.name, views[c.name].mode == ColumnMode.MASKED) for c in export.columns] if export else []
    hidden = sum(1 for view in views.values() if view.mode == ColumnMode.HIDDEN)
    return render(request, "transfer/export.html", table_context(
        opened, export=export, columns=columns, hidden=hidden, problem=problem, chosen=fmt,
        choices=list(formats.LABELS.items()), reauth_rows=f"{settings.EXPORT_REAUTH_ROWS:,}",
        keep_hours=settings.JOB_FILE_SECONDS // 3600,
        action_url=request.get_full_path()), status=status)


@require_http_methods(["GET", "POST"])
@requires(Action.EXPORT, resource=table_resource)
@table_view()
def export_table(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: export on the table. GET: what the export holds and the formats. POST: the file, streamed."""
    from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate

    info = opened.info
    try:
        export = service.prepare(info, opened.access.columns, BrowseParams.from_query(request.GET))
    except service.ExportRefused as exc:
        return _page(request, opened, None, status=400, problem=str(exc))
    if request.method == "GET":
        return _page(request, opened, export)
    fmt = request.POST.get("format", "")
    if fmt not in formats.MEDIA_TYPES:
        return _page(request, opened, export, status=400, problem="Choose one of the listed formats.")
    try:
        if service.needs_reauthentication(info, export) and not did_recently_reauthenticate(request):
            return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': request.get_full_path()})}")
        if request.POST.get("run") == "job":
            try:
                job = export_job.submit(request, info, export, fmt)
            except JobRefused as exc:
                return _page(request, opened, export, status=429, fmt=fmt, problem=str(exc))
            return redirect(reverse("jobs:detail", args=[job.pk]))
        if not service.take_slot(request.user):
            return _page(request, opened, export, status=429, fmt=fmt, problem=(
                f"You already have {settings.EXPORT_MAX_RUNNING} exports running. Wait for one to finish, then "
                "try again."))
        return service.stream(request, info, export, opened.access.columns, fmt)
    except OverflowError:  # SQLite: a number in the filters beyond 64 bits
        return _page(request, opened, export, status=400, fmt=fmt,
                     problem="A number in the filters is too large for this database.")
    except UNREACHABLE as exc:
        return problem_page(request, info.connection, exc)
