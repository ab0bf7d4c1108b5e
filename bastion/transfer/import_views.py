"""The import pages of a table: upload a file, check how it is read and where each column goes, start the job.

Permission: ``import`` on the table (T20), which must be one the user may see (404 otherwise). The upload is a
POST (CSRF-protected) that keeps the file and leads to the preview page, whose URL carries a signed ticket
naming the file for this user and connection only. The preview page reads the first rows as the chosen
settings read them and shows the type each column seems to hold; its POST either shows the preview again
with other settings ("preview") or starts the import as a background job ("start") and leads to the job's
page, where its progress shows. Every POST writes one audit event; the job writes the import's own.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action, ColumnMode
from bastion.explorer.access import OpenTable, table_resource
from bastion.explorer.views import table_context, table_view
from bastion.jobs import services as jobs
from bastion.transfer import importer, uploads
from bastion.transfer.import_forms import MappingForm, SourceForm, UploadForm
from bastion.transfer.import_steps import Reading, Unreadable, limits_context, read_upload, receive, submit


def _table_query(opened: OpenTable, **extra: str) -> str:
    info = opened.info
    query = {**({"s": info.schema} if info.schema else {}), "t": info.name, **extra}
    return urlencode(query)


def _target(opened: OpenTable) -> str:
    info = opened.info
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def _where(opened: OpenTable) -> dict[str, object]:
    info = opened.info
    return {"connection_id": info.connection.pk, "schema": info.schema, "table": info.name}


def _targets(opened: OpenTable) -> list[str]:
    """Table columns a file column may go into: those the user may insert into and sees in clear (as on the row
    forms, a masked column is never written: T31)."""
    access = opened.access
    return [c.name for c in opened.info.columns
            if c.name in access.insertable and access.columns[c.name].mode == ColumnMode.VISIBLE]


@require_http_methods(["GET", "POST"])
@requires(Action.IMPORT, resource=table_resource)
@table_view()
def import_table(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: import on the table. GET: the upload form. POST: keep the file, then its preview page."""
    if request.method == "GET":
        return _upload_page(request, opened, UploadForm(), "", 200)
    received = receive(request, opened.connection.pk, target=_target(opened), details=_where(opened))
    if received.upload is None:
        return _upload_page(request, opened, received.form, received.problem, received.status)
    url = reverse("transfer:import_preview", args=[opened.connection.pk])
    return redirect(f"{url}?{_table_query(opened, u=received.upload.ticket())}")


def _upload_page(request: HttpRequest, opened: OpenTable, form: UploadForm, problem: str,
                 status: int) -> HttpResponse:
    return render(request, "transfer/import_upload.html", table_context(
        opened, form=form, problem=problem, targets=_targets(opened), **limits_context()), status=status)


@require_http_methods(["GET", "POST"])
@requires(Action.IMPORT, resource=table_resource)
@table_view()
def import_preview(request: HttpRequest, opened: OpenTable) -> HttpResponse:
    """Permission: import on the table. GET: the file as read with the detected settings. POST "preview": as read
    with the chosen settings. POST "start": the import, queued as a job; then its progress page."""
    try:
        upload = uploads.from_ticket(request.GET.get("u", ""), request.user, opened.connection.pk)
    except uploads.TicketRefused as exc:
        return _upload_page(request, opened, UploadForm(), str(exc), 404)
    try:
        reading = read_upload(request, upload)
    except Unreadable as exc:
        return _preview_page(request, opened, upload, exc.form, None, problem=str(exc), status=400)
    starting = request.method == "POST" and request.POST.get("action") == "start"
    mapping_form = MappingForm(request.POST if starting else None, file_columns=reading.columns,
                               targets=_targets(opened))
    if not starting:
        return _preview_page(request, opened, upload, reading.form, mapping_form, reading=reading)
    if not mapping_form.is_valid():
        return _preview_page(request, opened, upload, reading.form, mapping_form, reading=reading, status=400)
    mapping = mapping_form.mapping()
    problems = importer.mapping_problems(opened.info, opened.access, mapping)
    if not problems:
        info = opened.info
        try:
            job = submit(request, upload, reading, mapping, connection=info.connection, schema=info.schema,
                         table=info.name, target=_target(opened))
        except jobs.JobRefused as exc:
            return _preview_page(request, opened, upload, reading.form, mapping_form, reading=reading,
                                 problem=str(exc), status=429)
        return redirect(reverse("jobs:detail", args=[job.pk]))
    return _preview_page(request, opened, upload, reading.form, mapping_form, reading=reading,
                         problem=" ".join(problems), status=400)


def _preview_page(request: HttpRequest, opened: OpenTable, upload: uploads.Upload, source_form: SourceForm,
                  mapping_form: MappingForm | None, *, reading: Reading | None = None, problem: str = "",
                  status: int = 200) -> HttpResponse:
    return render(request, "transfer/import_preview.html", table_context(
        opened, upload=upload, source_form=source_form, mapping_form=mapping_form, problem=problem,
        reading=reading, action_url=request.get_full_path(),
        required=[c.name for c in opened.info.columns if not c.nullable and c.default is None and not
                  c.autoincrement]), status=status)
