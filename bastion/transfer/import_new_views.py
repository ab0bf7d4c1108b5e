"""Importing a file as a new table: upload, check how it is read, name the table and its columns, start.

Permission: ``alter`` on the schema (``?s=``; none: the default one), as the schema editor's New table, and
``import`` there too (T20). The table is proposed from the file: one column per
file column, named after its header, typed after the values the first rows hold; every name and type can be
changed on the schema editor's own column rows, and columns can be left out. "Start" creates the table
through the schema editor (its checks, its audit event), then queues the import into it as a job. If the
import then fails or is cancelled, no row is written and the new table stays, empty (the job says so).
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action, ColumnMode
from bastion.access.policy import Resource, check, table_access
from bastion.connections.models import Connection
from bastion.explorer.access import visible_connection
from bastion.explorer.links import database_url
from bastion.explorer.schema import resolve_table
from bastion.explorer.views import UNREACHABLE, problem_page
from bastion.jobs import services as jobs
from bastion.schema_editor import services as schema
from bastion.schema_editor.definition import MAX_COLUMNS, TableSpec
from bastion.schema_editor.forms import COLUMNS_PREFIX, KEYS_PREFIX, NewTableForm
from bastion.schema_editor.views import schema_resource
from bastion.transfer import importer, inference, uploads
from bastion.transfer.import_forms import CellOptionsForm, UploadForm
from bastion.transfer.import_steps import Reading, Unreadable, limits_context, read_upload, receive, submit

# The schema editor's column type for what a file's column seems to hold.
_TYPE_OF_KIND = {"integer": "integer", "decimal": "decimal", "float": "float", "boolean": "boolean",
                 "date": "date", "time": "time", "datetime": "datetime", "json": "json", "text": "text"}


def _schema(request: HttpRequest) -> str | None:
    return request.GET.get("s") or None


def _where(connection: Connection, schema: str | None) -> str:
    return f"{connection.name}: {schema + '.' if schema else ''}(new table)"


def _context(request: HttpRequest, connection: Connection, **extra: Any) -> dict[str, Any]:
    schema = _schema(request)
    return {"connection": connection, "schema": schema, "database_url": database_url(connection.pk, schema),
            **limits_context(), **extra}


def _editor(request: HttpRequest, connection: Connection) -> schema.Editor:
    if not check(request.user, Action.IMPORT, Resource(connection.pk, _schema(request))):
        raise PermissionDenied("Importing a file as a new table needs the import grant on the schema.")
    try:
        return schema.editor_for(request.user, connection, _schema(request))
    except LookupError:
        raise Http404("No such schema.") from None


@require_http_methods(["GET", "POST"])
@requires(Action.ALTER, resource=schema_resource)
def import_new_table(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Permission: alter (and import) on the schema. GET: the upload form. POST: keep the file; its preview."""
    connection = visible_connection(request.user, connection_id)
    try:
        _editor(request, connection)
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)
    if request.method == "GET":
        return render(request, "transfer/import_new_upload.html", _context(request, connection, form=UploadForm()))
    received = receive(request, connection.pk, target=_where(connection, _schema(request)),
                       details={"connection_id": connection.pk, "schema": _schema(request), "table": None})
    if received.upload is None:
        return render(request, "transfer/import_new_upload.html", _context(
            request, connection, form=received.form, problem=received.problem), status=received.status)
    query = {**({"s": _schema(request)} if _schema(request) else {}), "u": received.upload.ticket()}
    return redirect(f"{reverse('transfer:import_new_preview', args=[connection.pk])}?{urlencode(query)}")


def _proposed_type(inferred: inference.Inferred, dialect: str, primary: bool) -> str:
    key = _TYPE_OF_KIND.get(inferred.kind, "text")
    if key == "integer" and inferred.big and dialect != "sqlite":
        return "bigint"  # SQLite's INTEGER holds 64 bits (and INTEGER PRIMARY KEY is the rowid)
    if key == "text" and primary and dialect == "mysql":
        return "varchar"  # MySQL cannot key a TEXT column
    if key == "datetime":
        return "timestamptz" if inferred.timezone and dialect == "postgresql" else "timestamp"
    return key


def _table_name(upload: uploads.Upload) -> str:
    stem = PurePath(upload.original_name).stem
    return re.sub(r"\s+", "_", stem.strip())[:60] or "imported"


def proposed_table(reading: Reading, upload: uploads.Upload, dialect: str) -> QueryDict:
    """The new-table form's data for this file: a column per file column, typed after the sample."""
    data = QueryDict(mutable=True)
    names = inference.vet_header_names(reading.columns)
    data.update({"name": _table_name(upload), f"{COLUMNS_PREFIX}-TOTAL_FORMS": str(len(names)),
                 f"{COLUMNS_PREFIX}-INITIAL_FORMS": "0", f"{KEYS_PREFIX}-TOTAL_FORMS": "0",
                 f"{KEYS_PREFIX}-INITIAL_FORMS": "0"})
    for index, (name, inferred) in enumerate(zip(names, reading.inferred, strict=True)):
        primary = index == 0 and name.lower() == "id" and inferred.kind == "integer" and not inferred.nullable
        key = _proposed_type(inferred, dialect, primary)
        prefix = f"{COLUMNS_PREFIX}-{index}"
        data[f"{prefix}-name"] = name
        data[f"{prefix}-type"] = key
        if key == "decimal":  # room for larger numbers than the sample's, at the sample's scale
            data[f"{prefix}-size"] = f"{min(max(inferred.precision, 1) + 6, 65)},{inferred.scale}"
        elif key == "varchar":
            data[f"{prefix}-size"] = "255"
        if primary:
            data[f"{prefix}-primary_key"] = "on"
        else:
            data[f"{prefix}-nullable"] = "on"
    return data


def _table_form(request: HttpRequest, reading: Reading, upload: uploads.Upload,
                editor: schema.Editor) -> NewTableForm:
    """The posted table definition while it still fits the file's columns; otherwise the proposed one."""
    options = {"dialect": editor.dialect, "tables": []}
    posted = request.POST if request.method == "POST" else None
    if posted is not None and posted.get(f"{COLUMNS_PREFIX}-TOTAL_FORMS") == str(len(reading.columns)):
        return NewTableForm(posted, **options)
    return NewTableForm(proposed_table(reading, upload, editor.dialect.name), **options)


def _kept_columns(form: NewTableForm) -> list[tuple[int, str]]:
    """(file position, column name) of the column rows not removed: row i is file column i."""
    return [(index, row.cleaned_data["name"]) for index, row in enumerate(form.columns.forms)
            if row.has_changed() and not row.cleaned_data.get("DELETE")]


def _may_fill(user: Any, connection: Connection, spec: TableSpec) -> list[str]:
    """Why the user could create this table but not import into it (asked before it is created, with the rules
    mapping_problems applies once it exists: insert on each column, shown in clear)."""
    table = Resource(connection.pk, spec.schema, spec.name)
    if not check(user, Action.IMPORT, table):
        return ["Your role may not import into a table of this name."]
    names = [c.name for c in spec.columns]
    access = table_access(user, connection.pk, spec.schema, spec.name, names)
    return [f"Your role may not insert into column {name!r}." for name in names
            if name not in access.insertable or access.columns[name].mode != ColumnMode.VISIBLE]


@require_http_methods(["GET", "POST"])
@requires(Action.ALTER, resource=schema_resource)
def import_new_preview(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Permission: alter (and import) on the schema. GET: the file as read and the proposed table. POST "preview":
    read again with other settings. POST "start": the table created, the import queued; then its progress page."""
    connection = visible_connection(request.user, connection_id)
    try:
        editor = _editor(request, connection)
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)
    try:
        upload = uploads.from_ticket(request.GET.get("u", ""), request.user, connection.pk)
    except uploads.TicketRefused as exc:
        return render(request, "transfer/import_new_upload.html",
                      _context(request, connection, form=UploadForm(), problem=str(exc)), status=404)
    page = {"upload": upload, "action_url": request.get_full_path(), "max_columns": MAX_COLUMNS}
    try:
        reading = read_upload(request, upload)
    except Unreadable as exc:
        return render(request, "transfer/import_new_preview.html", _context(
            request, connection, source_form=exc.form, problem=str(exc), **page), status=400)
    table_form = _table_form(request, reading, upload, editor)
    starting = request.method == "POST" and request.POST.get("action") == "start"
    options_form = CellOptionsForm(request.POST if starting else None)
    page.update(source_form=reading.form, reading=reading, form=table_form, options_form=options_form)
    if not starting:
        table_form.is_valid()  # the proposal's problems (a header that cannot be a name) show at once
        return render(request, "transfer/import_new_preview.html", _context(request, connection, **page))
    if not (table_form.is_valid() and options_form.is_valid()):
        return render(request, "transfer/import_new_preview.html", _context(request, connection, **page),
                      status=400)
    try:
        return _start(request, connection, editor, upload, reading, table_form, options_form)
    except (schema.DefinitionRefused, schema.CreateFailed, importer.ImportRefused, jobs.JobRefused) as exc:
        problems = exc.problems if isinstance(exc, schema.DefinitionRefused) else [str(exc)]
        return render(request, "transfer/import_new_preview.html", _context(
            request, connection, problems=problems, **page), status=400)
    except schema.NotPermitted:
        raise PermissionDenied from None
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)


def _start(request: HttpRequest, connection: Connection, editor: schema.Editor, upload: uploads.Upload,
           reading: Reading, table_form: NewTableForm, options_form: CellOptionsForm) -> HttpResponse:
    spec = table_form.spec(editor.schema)
    problems = _may_fill(request.user, connection, spec)
    if problems:
        raise importer.ImportRefused(" ".join(problems))
    jobs.check_room(request.user)  # before the table exists: a refusal then leaves nothing behind
    prepared = schema.prepare(request.user, connection, spec, dialect=editor.dialect)
    created = schema.create_table(request.user, request, connection, spec,
                                  schema.preview_token(request.user, connection, prepared))
    info = resolve_table(connection, created.schema, created.name)
    mapping = importer.Mapping(tuple(_kept_columns(table_form)), "fail", options_form.options())
    access = table_access(request.user, connection.pk, info.schema, info.name, info.column_names)
    refused = importer.mapping_problems(info, access, mapping)
    if refused:
        raise importer.ImportRefused(f"The table “{info.name}” was created, but " + " ".join(refused))
    job = submit(request, upload, reading, mapping, connection=connection, schema=info.schema, table=info.name,
                 target=f"{connection.name}: {info.schema + '.' if info.schema else ''}{info.name}")
    return redirect(reverse("jobs:detail", args=[job.pk]))
