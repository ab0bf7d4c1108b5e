"""Administering roles, their members and their grants (permission: manage).

Views parse the request, call one service in bastion.access.roles (which
checks manage again, validates and writes the audit event), and render.
A refused change re-renders the role page with the filled form, a plain
message and status 400.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from bastion.access import roles
from bastion.access.decorators import requires
from bastion.access.forms import (
    DeleteRoleForm,
    GrantForm,
    MemberForm,
    MFARequirementForm,
    RoleForm,
    TemplateForm,
    TwoPersonRuleForm,
)
from bastion.access.models import GLOBAL_ACTIONS, Action, Grant, TwoPersonOperation
from bastion.connections.models import Connection
from bastion.web.errors import validation_message

MANAGE = Action.MANAGE
ACTION_ORDER = {action.value: index for index, action in enumerate(Action)}
User = get_user_model()


def _form_errors_message(form: forms.Form) -> str:
    return " ".join(message for errors in form.errors.values() for message in errors)


def _role_url(role: Group, section: str = "") -> str:
    url = reverse("access:role_detail", args=[role.pk])
    return f"{url}#{section}" if section else url


def _grant_form(data: Any = None) -> GrantForm:
    form = GrantForm(data)
    form.fields["connection"].empty_label = "—"  # like the form's other optional choices
    return form


def _member_form(role: Group, data: Any = None) -> MemberForm:
    form = MemberForm(data)
    form.fields["user"].empty_label = "Choose a user"
    if data is None:  # offer only users not yet in the role; a POST is checked by the service
        form.fields["user"].queryset = form.fields["user"].queryset.exclude(groups=role)
    return form


def _grant_order(grant: Grant) -> tuple:
    """Broadest scope first, then actions in the order the Action list gives them."""
    return (grant.connection is not None, grant.connection.name if grant.connection else "", grant.schema,
            grant.table, grant.column, ACTION_ORDER[grant.action])


def _role_page(request: HttpRequest, role: Group, status: int = 200, error: str = "",
               **bound: forms.Form) -> HttpResponse:
    """The role page; ``bound`` replaces blank forms with the ones just refused (never adds a form)."""
    fixed = role.name in roles.FIXED_GRANT_ROLES
    builtin = role.name in roles.BUILTIN_ROLES
    default_template = role.name if role.name in roles.TEMPLATES else roles.VIEWER
    member_form = _member_form(role)
    context = {
        "role": role,
        "description": getattr(getattr(role, "options", None), "description", ""),
        "builtin": builtin,
        "fixed": fixed,
        "members": role.user_set.order_by("username"),
        "grants": sorted(role.grants.select_related("connection"), key=_grant_order),
        "global_actions": [str(action) for action in GLOBAL_ACTIONS],
        "error": error,
        "role_form": None if builtin else RoleForm(role=role),
        "member_form": member_form,
        "can_add_member": member_form.fields["user"].queryset.exists(),
        "grant_form": None if fixed else _grant_form(),
        "template_form": None if fixed else TemplateForm(initial={"template": default_template}),
        "template_actions": [(name, [Action(action).label for action in actions])
                             for name, actions in roles.TEMPLATES.items()],
        "has_connections": Connection.objects.exists(),
        "delete_form": None if builtin else DeleteRoleForm(),
        "two_person_form": TwoPersonRuleForm(role=role),
        "mfa_form": MFARequirementForm(initial={"require_mfa": getattr(getattr(role, "options", None),
                                                                        "require_mfa", False)}),
        "approval_hours": round(settings.SCHEMA_APPROVAL_SECONDS / 3600, 1),
    }
    context.update({name: form for name, form in bound.items() if context[name] is not None})
    return render(request, "access/role_detail.html", context, status=status)


@require_safe
@requires(MANAGE)
def role_list(request: HttpRequest) -> HttpResponse:
    listed = (Group.objects.select_related("options").order_by("name")
              .annotate(member_count=Count("user", distinct=True), grant_count=Count("grants", distinct=True)))
    return render(request, "access/role_list.html", {"roles": listed, "builtin_roles": roles.BUILTIN_ROLES})


@require_http_methods(["GET", "HEAD", "POST"])
@requires(MANAGE)
def role_new(request: HttpRequest) -> HttpResponse:
    form = RoleForm(request.POST if request.method == "POST" else None)  # an empty POST is still a POST
    if request.method == "POST" and form.is_valid():
        try:
            role = roles.create_role(request.user, request, form.cleaned_data["name"],
                                     form.cleaned_data["description"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Role {role.name} created. It has no grants yet.")
            return redirect("access:role_detail", pk=role.pk)
    return render(request, "access/role_new.html", {"form": form}, status=400 if form.errors else 200)


@require_safe
@requires(MANAGE)
def role_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _role_page(request, get_object_or_404(Group, pk=pk))


@require_POST
@requires(MANAGE)
def role_update(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = RoleForm(request.POST, role=role)
    if not form.is_valid():
        return _role_page(request, role, 400, _form_errors_message(form), role_form=form)
    try:
        roles.update_role(request.user, request, role, form.cleaned_data["name"], form.cleaned_data["description"])
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc), role_form=form)
    messages.success(request, f"Role {role.name} saved.")
    return redirect(_role_url(role))


@require_POST
@requires(MANAGE)
def role_delete(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = DeleteRoleForm(request.POST)
    if not form.is_valid() or form.cleaned_data["confirmation"] != role.name:
        message = f"Type the role's name, {role.name}, exactly to delete it."
        return _role_page(request, role, 400, message, delete_form=form)
    name = role.name
    try:
        roles.delete_role(request.user, request, role)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc), delete_form=form)
    messages.success(request, f"Role {name} deleted.")
    return redirect("access:role_list")


@require_POST
@requires(MANAGE)
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = _member_form(role, request.POST)
    if not form.is_valid():
        return _role_page(request, role, 400, "Choose an active user from the list.", member_form=_member_form(role))
    member = form.cleaned_data["user"]
    try:
        roles.add_member(request.user, request, role, member)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc))
    messages.success(request, f"{member.get_username()} is now a member of {role.name}.")
    return redirect(_role_url(role, "members"))


@require_POST
@requires(MANAGE)
def member_remove(request: HttpRequest, pk: int, user_pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    member = get_object_or_404(User, pk=user_pk)
    try:
        roles.remove_member(request.user, request, role, member)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc))
    messages.success(request, f"{member.get_username()} is no longer a member of {role.name}.")
    return redirect(_role_url(role, "members"))


@require_POST
@requires(MANAGE)
def grant_add(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    data = request.POST.copy()
    data["role"] = str(role.pk)  # the role is the one in the address, never one from the form
    form = _grant_form(data)
    if not form.is_valid():
        if "role" in form.errors:  # the form offers every role but the fixed ones
            return _role_page(request, role, 400, f"The grants of the built-in role {role.name} are fixed.")
        return _role_page(request, role, 400, "The grant was not added: " + _form_errors_message(form),
                          grant_form=form)
    try:
        grant = roles.add_grant(request.user, request, **form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)
        return _role_page(request, role, 400, "The grant was not added: " + validation_message(exc), grant_form=form)
    messages.success(request, f"Granted {grant.get_action_display().lower()} on {grant.scope_label()} "
                              f"to {role.name}.")
    return redirect(_role_url(role, "grants"))


@require_POST
@requires(MANAGE)
def grant_remove(request: HttpRequest, pk: int, grant_pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    grant = get_object_or_404(Grant.objects.select_related("role", "connection"), pk=grant_pk, role=role)
    label = f"{grant.get_action_display().lower()} on {grant.scope_label()}"
    try:
        roles.remove_grant(request.user, request, grant)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc))
    messages.success(request, f"Removed {label} from {role.name}.")
    return redirect(_role_url(role, "grants"))


@require_POST
@requires(MANAGE)
def template_apply(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = TemplateForm(request.POST)
    if not form.is_valid():
        return _role_page(request, role, 400, "Choose a template and a connection.", template_form=form)
    template, connection = form.cleaned_data["template"], form.cleaned_data["connection"]
    try:
        added = roles.grant_template(request.user, request, role, connection, template)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc), template_form=form)
    if added:
        messages.success(request, f"{template} template applied to {role.name} on {connection.name}: "
                                  f"{len(added)} grant{'s' if len(added) != 1 else ''} added.")
    else:
        messages.success(request, f"{role.name} already had every grant of the {template} template "
                                  f"on {connection.name}.")
    return redirect(_role_url(role, "grants"))


@require_POST
@requires(MANAGE)
def two_person_rule(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = TwoPersonRuleForm(request.POST)
    if not form.is_valid():
        return _role_page(request, role, 400, "Nothing was changed: " + _form_errors_message(form),
                          two_person_form=form)
    operations = form.cleaned_data["operations"]
    try:
        roles.set_two_person_rule(request.user, request, role, operations)
    except ValidationError as exc:
        return _role_page(request, role, 400, validation_message(exc), two_person_form=form)
    if operations:
        messages.success(request, f"Members of {role.name} now need a second person's approval for: "
                                  f"{', '.join(TwoPersonOperation(op).label.lower() for op in operations)}.")
    else:
        messages.success(request, f"Members of {role.name} no longer need a second person's approval.")
    return redirect(_role_url(role, "two-person"))


@require_POST
@requires(MANAGE)
def mfa_requirement(request: HttpRequest, pk: int) -> HttpResponse:
    role = get_object_or_404(Group, pk=pk)
    form = MFARequirementForm(request.POST)
    form.is_valid()  # a lone checkbox: absent means off
    required = bool(form.cleaned_data.get("require_mfa"))
    roles.set_mfa_requirement(request.user, request, role, required)
    if required:
        messages.success(request, f"Members of {role.name} must now use two-factor authentication; those who "
                                  "have not set it up are sent to do so before anything else.")
    else:
        messages.success(request, f"Members of {role.name} no longer need two-factor authentication for this role.")
    return redirect(_role_url(role, "mfa"))
