"""Registering target databases (permission: manage). Views parse, call one service, render."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.connections import services
from bastion.connections.forms import ConnectionForm, DeleteForm
from bastion.connections.models import Connection

MANAGE = Action.MANAGE


def _test_draft(request: HttpRequest, form: ConnectionForm) -> None:
    """"Test connection" with the typed settings, before saving (the stored password only for its server)."""
    try:
        result = services.test_settings(request.user, request, form.instance,
                                        password=form.cleaned_data["password"],
                                        clear_password=form.cleaned_data.get("clear_password", False),
                                        **form.settings())
    except ValidationError as exc:
        form.add_error(None, exc)
        return
    if result.ok:
        messages.success(request, f"Connected: {result.server_version}.")
    else:
        form.add_error(None, f"Could not connect: {result.message}")


def _save(request: HttpRequest, form: ConnectionForm) -> Connection | None:
    try:
        if form.instance is None:
            return services.create_connection(request.user, request, password=form.cleaned_data["password"],
                                              **form.settings())
        form.instance.updated_at = dt.datetime.fromisoformat(form.cleaned_data["updated_at"])
        return services.update_connection(request.user, request, form.instance,
                                          password=form.cleaned_data["password"],
                                          clear_password=form.cleaned_data["clear_password"], **form.settings())
    except ValueError:
        form.add_error(None, "The form was damaged; reload the page and try again.")
    except ValidationError as exc:
        form.add_error(None, exc)
    return None


def _edit_page(request: HttpRequest, instance: Connection | None) -> HttpResponse:
    form = ConnectionForm(request.POST if request.method == "POST" else None, instance=instance)
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "test":
            _test_draft(request, form)
        else:
            saved = _save(request, form)
            if saved is not None:
                messages.success(request, f"Connection {saved.name} saved.")
                return redirect("connections:list")
    status = 400 if form.errors else 200
    return render(request, "connections/form.html", {"form": form, "instance": instance}, status=status)


@require_safe
@requires(MANAGE)
def connection_list(request: HttpRequest) -> HttpResponse:
    return render(request, "connections/list.html", {"connections": Connection.objects.all()})


@requires(MANAGE)
def connection_new(request: HttpRequest) -> HttpResponse:
    return _edit_page(request, None)


@requires(MANAGE)
def connection_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit_page(request, get_object_or_404(Connection, pk=pk))


@require_POST
@requires(MANAGE)
def connection_test(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    result = services.test_saved_connection(request.user, request, connection)
    if result.ok:
        messages.success(request, f"{connection.name}: connected ({result.server_version}).")
    else:
        messages.error(request, f"{connection.name}: could not connect: {result.message}")
    return redirect("connections:list")


@require_POST
@requires(MANAGE)
def connection_enabled(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    enabled = request.POST.get("enabled") == "1"
    services.set_enabled(request.user, request, connection, enabled)
    messages.success(request, f"{connection.name} is {'enabled' if enabled else 'disabled'}.")
    return redirect("connections:list")


@requires(MANAGE)
def connection_delete(request: HttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(Connection, pk=pk)
    form = DeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.delete_connection(request.user, request, connection,
                                       confirmation=form.cleaned_data["confirmation"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Connection {connection.name} deleted.")
            return redirect("connections:list")
    return render(request, "connections/delete.html", {"connection": connection, "form": form},
                  status=400 if form.errors else 200)
