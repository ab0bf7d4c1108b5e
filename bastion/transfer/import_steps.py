"""The steps every import page shares: receiving the upload, reading it with the chosen settings, and
queueing the job; each POST audited once (T33)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.jobs import services as jobs
from bastion.transfer import importer, inference, sources, uploads
from bastion.transfer.import_forms import SourceForm, UploadForm

PREVIEW_ROWS = 20
SAMPLE_ROWS = 1000
SAMPLE_CHARS = 4 * 1024 * 1024  # the sample's cells hold this much at most, plus one row (T28)
UPLOADED = "import.upload"
SUBMITTED = "import.submit"


@dataclass(frozen=True)
class Received:
    """The upload form after a POST: the kept upload, or the form and why not (with the HTTP status)."""

    form: UploadForm
    upload: uploads.Upload | None
    problem: str = ""
    status: int = 200


def receive(request: HttpRequest, connection_id: int, *, target: str, details: dict[str, Any]) -> Received:
    """Keep the posted file for this user and connection (audited), or say why not."""
    form = UploadForm(request.POST, request.FILES)
    if uploads.too_large(request):
        return Received(form, None, f"The file is larger than {limits_context()['max_mb']} MB, the most an import "
                                    "may upload (BASTION_IMPORT_MAX_MB).", 413)
    if not form.is_valid():
        return Received(form, None, "", 400)
    upload = uploads.keep(form.cleaned_data["file"], request.user, connection_id)
    record(UPLOADED, request=request, target=target,
           details={**details, "file": upload.original_name, "bytes": upload.size})
    return Received(form, upload)


def limits_context() -> dict[str, str]:
    return {"max_mb": f"{settings.IMPORT_MAX_BYTES // (1024 * 1024):,}", "max_rows": f"{settings.IMPORT_MAX_ROWS:,}"}


def _source_options(form: SourceForm) -> sources.SourceOptions:
    data = form.cleaned_data
    return sources.SourceOptions(format=data["format"], encoding=data["encoding"],
                                 delimiter=data.get("delimiter") or ",", quotechar=data.get("quotechar") or '"',
                                 header=data["header"])


def _detected_form(upload: uploads.Upload) -> SourceForm:
    detected = sources.detect(upload.path)
    initial = {"format": detected.format, "encoding": detected.encoding, "delimiter": detected.delimiter,
               "quotechar": detected.quotechar, "header": detected.header}
    form = SourceForm(initial, detected_encoding=detected.encoding)
    form.is_valid()
    return form


class Unreadable(Exception):
    """The file cannot be read with these settings; ``str()`` says why, ``form`` holds the settings."""

    def __init__(self, form: SourceForm, message: str = "") -> None:
        super().__init__(message)
        self.form = form


@dataclass(frozen=True)
class Reading:
    """The upload as the chosen settings read it: its columns, a sample of rows, the types they seem to hold."""

    form: SourceForm
    options: sources.SourceOptions
    columns: list[str]
    sample: list[list[str | None]]
    inferred: list[inference.Inferred]

    @property
    def preview_rows(self) -> list[list[str | None]]:
        return self.sample[:PREVIEW_ROWS]

    @property
    def file_columns(self) -> list[tuple[str, inference.Inferred]]:
        return list(zip(self.columns, self.inferred, strict=True))


def read_upload(request: HttpRequest, upload: uploads.Upload) -> Reading:
    """The upload read with the posted settings (a POST) or the detected ones (a GET); Unreadable otherwise."""
    try:
        form = (SourceForm(request.POST, detected_encoding=request.POST.get("encoding", ""))
                if request.method == "POST" else _detected_form(upload))
    except sources.SourceError as exc:
        raise Unreadable(SourceForm(), str(exc)) from None
    if not form.is_valid():
        raise Unreadable(form)
    options = _source_options(form)
    try:
        columns, sample = _sample(upload, options)
    except sources.SourceError as exc:
        raise Unreadable(form, str(exc)) from None
    return Reading(form, options, columns, sample, inference.infer(columns, sample))


def _sample(upload: uploads.Upload, options: sources.SourceOptions) -> tuple[list[str], list[list[str | None]]]:
    """The file's columns and first rows: SAMPLE_ROWS at most, and only as many as SAMPLE_CHARS hold, so a
    preview (every GET) of a file of wide rows does not hold a large part of it in memory."""
    rows: list[list[str | None]] = []
    held = 0
    with sources.open_rows(upload.path, options) as source:
        batches = source.batches(1)
        try:
            for batch in batches:
                rows.extend(batch)
                held += sum(len(cell) for row in batch for cell in row if cell)
                if len(rows) >= SAMPLE_ROWS or held > SAMPLE_CHARS:
                    break
        finally:
            batches.close()
        return source.columns, rows


def submit(request: HttpRequest, upload: uploads.Upload, reading: Reading, mapping: importer.Mapping, *,
           connection: Any, schema: str | None, table: str, target: str) -> Any:
    """The import queued as a job (its submission audited); raises jobs.JobRefused (audited too)."""
    details = {"connection_id": connection.pk, "schema": schema, "table": table, "file": upload.original_name,
               "bytes": upload.size, "columns": mapping.columns, "conflict": mapping.conflict}
    params = {"source": reading.options.as_params(), "original_name": upload.original_name, **mapping.as_params()}
    try:
        job = jobs.submit(request.user, "import", connection=connection, schema=schema, table=table,
                          params=params, bytes_total=upload.size, file_name=upload.file_name)
    except jobs.JobRefused as exc:
        record(SUBMITTED, request=request, target=target, outcome=Outcome.FAILURE,
               details={**details, "message": str(exc)})
        raise
    record(SUBMITTED, request=request, target=target, details={**details, "job": str(job.pk)})
    return job


