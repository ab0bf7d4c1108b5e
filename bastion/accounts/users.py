"""Administering users: create with a one-time password, roles, deactivate, reset.

Every function is one audited transaction. Guards keep an administrator from
locking everybody out: nobody deactivates themselves, and the last active
administrator cannot be deactivated or lose the Admin role.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from bastion.access.models import Action
from bastion.access.policy import check
from bastion.access.roles import ADMIN, add_member, remove_member
from bastion.accounts.services import one_time_password
from bastion.audit.services import record

User = get_user_model()


@dataclass(frozen=True)
class IssuedPassword:
    user: object
    password: str


def _authorise(request: HttpRequest) -> None:
    """Services re-check what the view declared: a second caller must not skip it."""
    if not check(request.user, Action.MANAGE):
        raise PermissionDenied


def _role_names(user) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def _is_admin(user) -> bool:
    return user.is_superuser or user.groups.filter(name=ADMIN).exists()


def _other_active_admins(user) -> bool:
    return (User.objects.filter(is_active=True).exclude(pk=user.pk)
            .filter(groups__name=ADMIN).exists()
            or User.objects.filter(is_active=True, is_superuser=True).exclude(pk=user.pk).exists())


def create_user(request: HttpRequest, username: str, email: str, roles: Iterable[Group]) -> IssuedPassword:
    """A new account that must choose its own password at first sign-in."""
    _authorise(request)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with this name already exists."})
    password = one_time_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password)
        user.must_change_password = True
        user.save(update_fields=["must_change_password"])
        user.groups.set(roles)
        record("user.created", request=request, target=username,
               after={"username": username, "email": email, "roles": _role_names(user)})
    return IssuedPassword(user, password)


def set_roles(request: HttpRequest, user, roles: Iterable[Group]) -> None:
    """Make ``user``'s roles exactly ``roles``: one audited membership change per role added or removed."""
    wanted = {role.pk: role for role in roles}
    current = {role.pk: role for role in user.groups.all()}
    for pk in current.keys() - wanted.keys():
        remove_member(request.user, request, current[pk], user)
    for pk in wanted.keys() - current.keys():
        add_member(request.user, request, wanted[pk], user)


def set_active(request: HttpRequest, user, active: bool) -> None:
    _authorise(request)
    if not active and user.pk == request.user.pk:
        raise ValidationError("You cannot deactivate your own account.")
    if not active and _is_admin(user) and not _other_active_admins(user):
        raise ValidationError("This is the last active administrator and cannot be deactivated.")
    # A never-signed-in account that is deactivated gets a new unusable password: the state its e-mailed
    # invitation or activation link was made for never comes back (bastion.accounts.links, T17).
    void_links = not active and user.last_login is None
    with transaction.atomic():
        user.is_active = active
        if void_links:
            user.set_unusable_password()
        user.save(update_fields=["is_active", "password"] if void_links else ["is_active"])
        record("user.activated" if active else "user.deactivated", request=request, target=user.get_username(),
               details={"links_voided": True} if void_links else None)


def reset_password(request: HttpRequest, user) -> IssuedPassword:
    """A new one-time password; changing the hash also ends the user's sessions."""
    _authorise(request)
    password = one_time_password()
    with transaction.atomic():
        user.set_password(password)
        user.must_change_password = True
        user.save(update_fields=["password", "must_change_password"])
        record("user.password_reset_by_admin", request=request, target=user.get_username())
    return IssuedPassword(user, password)
