"""The schema editor's pages. This slice: create a table (form, preview of the exact SQL, confirm).

Every view declares its permission: ``alter`` on the connection, or on the schema
``?s=`` names (T20). A GET only shows the form. A table is created only by a POST
that confirms a preview: the form comes back with a signed token of the statement
shown, and the service refuses to run anything else (services.check_preview).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.access.policy import Resource, check
from bastion.accounts.pending import RESUMED_MESSAGE, keeps_input
from bastion.explorer.access import visible_connection
from bastion.explorer.links import database_url, page_url
from bastion.explorer.views import UNREACHABLE, problem_page
from bastion.schema_editor import services
from bastion.schema_editor.definition import TableSpec
from bastion.schema_editor.forms import COLUMNS_PREFIX, KEYS_PREFIX, NewTableForm


def schema_resource(request: HttpRequest, connection_id: int, **_: Any) -> Resource:
    """The schema a request is about (``?s=``; none: the connection's default schema), for permission checks."""
    return services.schema_resource(connection_id, request.GET.get("s") or None)


def _here(connection_id: int, schema: str | None) -> str:
    url = reverse("schema_editor:new_table", args=[connection_id])
    if not schema:
        return url
    query = QueryDict(mutable=True)
    query["s"] = schema
    return f"{url}?{query.urlencode()}"


def _page(request: HttpRequest, editor: services.Editor, form: NewTableForm, *, status: int = 200,
          **extra: Any) -> HttpResponse:
    connection = editor.connection
    return render(request, "schema_editor/new_table.html", {
        "connection": connection,
        "schema": editor.schema,
        "form": form,
        "column_names": form.column_names(),
        "database_url": database_url(connection.pk, editor.schema),
        "action_url": _here(connection.pk, editor.schema),
        "referable": bool(editor.referable_tables),
        **extra,
    }, status=status)


def _created(request: HttpRequest, connection_id: int, spec: TableSpec) -> HttpResponse:
    messages.success(request, f"Table “{spec.name}” created.")
    if check(request.user, Action.VIEW, Resource(connection_id, spec.schema, spec.name)):
        return redirect(page_url("table", connection_id, spec.schema, spec.name))
    messages.info(request, "Your role does not let you open its rows.")
    return redirect(database_url(connection_id, spec.schema))


@require_http_methods(["GET", "POST"])
@keeps_input
@requires(Action.ALTER, resource=schema_resource)
def new_table(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Permission: alter on the connection or schema. GET: the form. POST: more rows, a preview, or (with the
    preview's token) the table created and the user sent to it."""
    connection = visible_connection(request.user, connection_id)
    try:
        editor = services.editor_for(request.user, connection, request.GET.get("s") or None)
    except LookupError:
        raise Http404("No such schema.") from None
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)
    options = {"dialect": editor.dialect, "tables": editor.referable_tables}
    if request.method == "GET":
        resumed = request.resumed_post
        if resumed is None:
            return _page(request, editor, NewTableForm(None, **options))
        messages.info(request, RESUMED_MESSAGE)
        return _page(request, editor, NewTableForm(resumed, **options))  # shown again, never run from a GET

    for button, prefix in (("add_columns", COLUMNS_PREFIX), ("add_keys", KEYS_PREFIX)):
        if button in request.POST:
            return _page(request, editor, NewTableForm.with_more_rows(request.POST, prefix, **options))
    form = NewTableForm(request.POST, **options)
    if not form.is_valid():
        return _page(request, editor, form, status=400)
    spec = form.spec(editor.schema)
    problems: list[str] = []
    try:
        if "confirm" in request.POST:
            try:
                created = services.create_table(request.user, request, connection, spec,
                                                request.POST.get("token", ""))
            except services.PreviewMismatch as exc:
                problems = [str(exc)]  # and the statement as it is now, to confirm
            else:
                return _created(request, connection.pk, created)
        prepared = services.prepare(request.user, connection, spec, dialect=editor.dialect)
    except (services.DefinitionRefused, services.CreateFailed) as exc:
        found = exc.problems if isinstance(exc, services.DefinitionRefused) else [str(exc)]
        return _page(request, editor, form, problems=found, status=400)
    except services.NotPermitted:
        raise PermissionDenied from None
    except UNREACHABLE as exc:
        return problem_page(request, connection, exc)
    return _page(request, editor, form, problems=problems, status=409 if problems else 200, preview=prepared,
                 token=services.preview_token(request.user, connection, prepared))
