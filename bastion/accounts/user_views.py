"""Administering users (permission: manage). Views parse, call one service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.accounts import mfa, users
from bastion.accounts.forms import NewUserForm, UserRolesForm
from bastion.accounts.sessions import sessions_of
from bastion.web.errors import validation_message

User = get_user_model()


def _detail(request: HttpRequest, subject, error: str = "", status: int = 200) -> HttpResponse:
    roles_form = UserRolesForm(initial={"roles": subject.groups.all()})
    return render(request, "accounts/user_detail.html",
                  {"subject": subject, "roles_form": roles_form, "error": error,
                   "mfa_types": mfa.enrolled_types(subject), "mfa_required": mfa.mfa_required(subject),
                   "sessions": sessions_of(subject)},
                  status=status)


@require_safe
@requires(Action.MANAGE)
def user_list(request: HttpRequest) -> HttpResponse:
    listed = User.objects.order_by("username").prefetch_related("groups")
    return render(request, "accounts/user_list.html", {"users": listed})


@requires(Action.MANAGE)
def user_new(request: HttpRequest) -> HttpResponse:
    form = NewUserForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = users.create_user(request, form.cleaned_data["username"], form.cleaned_data["email"],
                                       form.cleaned_data["roles"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return render(request, "accounts/password_issued.html", {"issued": issued})
    return render(request, "accounts/user_new.html", {"form": form}, status=400 if form.errors else 200)


@require_safe
@requires(Action.MANAGE)
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, get_object_or_404(User, pk=pk))


@require_POST
@requires(Action.MANAGE)
def user_roles(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    form = UserRolesForm(request.POST)
    if not form.is_valid():
        return _detail(request, subject, "Choose roles from the list.", status=400)
    try:
        users.set_roles(request, subject, form.cleaned_data["roles"])
    except ValidationError as exc:
        return _detail(request, subject, validation_message(exc), status=400)
    messages.success(request, f"Roles of {subject.username} saved.")
    return redirect("accounts:user_detail", pk=subject.pk)


@require_POST
@requires(Action.MANAGE)
def user_active(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "1"
    try:
        users.set_active(request, subject, active)
    except ValidationError as exc:
        return _detail(request, subject, validation_message(exc), status=400)
    messages.success(request, f"{subject.username} is {'active again' if active else 'deactivated'}.")
    return redirect("accounts:user_detail", pk=subject.pk)


@require_POST
@requires(Action.MANAGE)
def user_reset_password(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    return render(request, "accounts/password_issued.html", {"issued": users.reset_password(request, subject)})
