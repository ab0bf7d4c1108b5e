"""The SQL console's pages: the editor and its results, EXPLAIN, downloads, drafts, history, saved queries.

Every view needs the ``query`` grant on the connection; each statement is then
checked against the user's grants before anything runs (bastion.console.authorize)
and runs under the engine's guards (bastion.console.guards).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from sqlalchemy.exc import DBAPIError

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.access.policy import Resource, holds_in_connection
from bastion.accounts.pending import keeps_input
from bastion.audit.middleware import mark_audited
from bastion.audit.models import Outcome
from bastion.connections.errors import safe_message
from bastion.connections.models import Connection
from bastion.console import services
from bastion.console.download import FORMATS, download_refusal, stream_result
from bastion.console.explain import explain
from bastion.console.forms import ConsoleForm, SaveQueryForm
from bastion.console.models import SavedQuery
from bastion.console.runner import Plan, Run, plan_script, run_plan, statement_problem
from bastion.explorer.access import visible_connection
from bastion.explorer.links import database_url
from bastion.explorer.views import UNREACHABLE


def connection_resource(request: HttpRequest, connection_id: int, **_: Any) -> Resource:
    return Resource(connection_id)


def _console_url(connection: Connection) -> str:
    return reverse("console:console", args=[connection.pk])


def _page(request: HttpRequest, connection: Connection, form: ConsoleForm, **extra: Any) -> HttpResponse:
    user = request.user
    context = {
        "connection": connection,
        "form": form,
        "database_url": database_url(connection.pk, None),
        "can_export": holds_in_connection(user, Action.EXPORT, connection.pk),
        "can_write": holds_in_connection(user, Action.QUERY_WRITE, connection.pk),
        "save_form": SaveQueryForm(initial={"sql": form.data.get("sql", form.initial.get("sql", ""))}, user=user),
        "saved": services.visible_saved_queries(user, connection)[:20],
        "recent": services.history(user, connection)[:10],
        **extra,
    }
    return render(request, "console/console.html", context, status=extra.get("status", 200))


def _initial_text(request: HttpRequest, connection: Connection) -> str:
    """What the editor starts with: a history entry or saved query asked for, else the user's draft."""
    user = request.user
    if "history" in request.GET:
        entry = services.history(user, connection).filter(pk=_id(request.GET["history"])).first()
        if entry is None:
            raise Http404("No such history entry.")
        return entry.text
    if "saved" in request.GET:
        saved = services.visible_saved_queries(user, connection).filter(pk=_id(request.GET["saved"])).first()
        if saved is None:
            raise Http404("No such saved query.")
        return saved.text
    return services.draft_text(user, connection)


def _id(text: str) -> int:
    """A primary key from a URL parameter; 0 (no such row) for anything but plain ASCII digits."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 0


@keeps_input
@requires(Action.QUERY, resource=connection_resource)
def console(request: HttpRequest, connection_id: int) -> HttpResponse:
    """GET: the editor with the user's draft. POST: run the script (or EXPLAIN it) and show the results."""
    connection = visible_connection(request.user, connection_id)
    if request.method == "GET" and request.resumed_post is None:
        return _page(request, connection, ConsoleForm(initial={"sql": _initial_text(request, connection)}))
    if request.method not in ("GET", "POST"):
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    form = ConsoleForm(request.POST if request.method == "POST" else request.resumed_post)
    if request.method == "GET" or not form.is_valid():
        return _page(request, connection, form, status=200 if request.method == "GET" else 400)
    script = form.cleaned_data["sql"]
    services.store_draft(request.user, connection, script)
    try:
        plan = plan_script(request.user, connection, script)
        if "explain" in request.POST:
            return _explained(request, connection, form, plan)
        run = run_plan(plan, pages=form.pages(), page_size=form.cleaned_data["size"])
    except UNREACHABLE as exc:
        return _page(request, connection, form, unreachable=safe_message(exc))
    services.audit_run(request, "console.run", plan, run)
    services.remember_run(request.user, plan, run)
    return mark_audited(_page(request, connection, form, plan=plan, run=run, status=_status(plan, run)))


def _status(plan: Plan, run: Run) -> int:
    if plan.problem is not None:
        return 403 if plan.statements else 400
    return 200 if run.problem is None else 400


def _explained(request: HttpRequest, connection: Connection, form: ConsoleForm, plan: Plan) -> HttpResponse:
    explained, problem = explain(plan)
    services.audit_run(request, "console.explain", plan, None,
                       outcome=Outcome.FAILURE if problem and not plan.problem else None,
                       message=problem.message if problem else None)
    status = 200 if problem is None else (403 if plan.problem is not None and plan.statements else 400)
    return mark_audited(_page(request, connection, form, plan=plan, explained=explained, explain_problem=problem,
                              status=status))


@require_POST
@requires(Action.QUERY, resource=connection_resource)
def download(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Stream one statement's whole result as CSV, JSON Lines, JSON or SQL INSERT statements (needs the export
    grant on what it reads)."""
    connection = visible_connection(request.user, connection_id)
    form = ConsoleForm(request.POST)
    asked = form.download() if form.is_valid() else None
    if asked is None or asked[1] not in FORMATS:
        return _page(request, connection, form, status=400)
    index, fmt = asked
    try:
        plan = plan_script(request.user, connection, form.cleaned_data["sql"])
    except UNREACHABLE as exc:
        return _page(request, connection, form, unreachable=safe_message(exc))
    statement = next((s for s in plan.statements if s.index == index), None)
    reason = plan.problem.message if plan.problem else (
        download_refusal(plan, statement) if statement else "There is no such statement.")
    if reason is not None:
        services.audit_run(request, "console.download", plan, None, outcome=Outcome.DENIED, message=reason)
        return mark_audited(_page(request, connection, form, download_problem=reason, status=403))
    try:
        return stream_result(request, plan, statement, fmt)
    except DBAPIError as exc:
        problem = statement_problem(plan, exc, index, shifted=True)
        services.audit_run(request, "console.download", plan, None, outcome=Outcome.FAILURE,
                           message=problem.message)
        return _page(request, connection, form, download_problem=problem.message, status=400)


@require_POST
@requires(Action.QUERY, resource=connection_resource)
def save_draft(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Keep the editor's text. From the page's script: 204; from the button (no JavaScript): back to the editor."""
    connection = visible_connection(request.user, connection_id)
    text = request.POST.get("sql", "")
    if len(text) > ConsoleForm.base_fields["sql"].max_length:
        return HttpResponse("The text is too long to keep.", status=400, content_type="text/plain")
    services.save_draft(request, connection, text)
    if request.headers.get("X-Requested-With") == "fetch":
        return HttpResponse(status=204)
    messages.success(request, "Draft saved.")
    return redirect(_console_url(connection))


@require_safe
@requires(Action.QUERY, resource=connection_resource)
def history(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = visible_connection(request.user, connection_id)
    return render(request, "console/history.html", {
        "connection": connection, "entries": services.history(request.user, connection),
        "console_url": _console_url(connection)})


@require_POST
@requires(Action.QUERY, resource=connection_resource)
def save_query(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = visible_connection(request.user, connection_id)
    form = SaveQueryForm(request.POST, user=request.user)
    if not form.is_valid():
        errors = "; ".join(str(e) for field in form.errors.values() for e in field)
        messages.error(request, f"The query was not saved: {errors}")
        return redirect(_console_url(connection))
    saved = services.save_query(request, connection, form.cleaned_data["name"], form.cleaned_data["sql"],
                                form.cleaned_data["shared_with"])
    messages.success(request, f"Saved as “{saved.name}”.")
    return redirect(f"{_console_url(connection)}?saved={saved.pk}")


@require_safe
@requires(Action.QUERY, resource=connection_resource)
def saved_queries(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = visible_connection(request.user, connection_id)
    return render(request, "console/saved.html", {
        "connection": connection, "queries": services.visible_saved_queries(request.user, connection),
        "console_url": _console_url(connection)})


@require_POST
@requires(Action.QUERY, resource=connection_resource)
def delete_saved_query(request: HttpRequest, connection_id: int, pk: int) -> HttpResponse:
    """Only the owner deletes a saved query; others see 404, as if it were not there."""
    connection = visible_connection(request.user, connection_id)
    saved = get_object_or_404(SavedQuery, pk=pk, connection=connection, owner=request.user)
    services.delete_saved_query(request, saved)
    messages.success(request, f"Deleted “{saved.name}”.")
    return redirect(reverse("console:saved", args=[connection.pk]))
