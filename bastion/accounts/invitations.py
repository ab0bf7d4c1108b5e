"""Invitations: an administrator invites by e-mail; the invitee sets a password through the link.

An invited account is inactive, with an unusable password and no sign-in yet ("pending") until the
link is used. Every function is one audited transaction; the e-mail is sent inside it, so a failed
send leaves nothing behind and the admin sees why.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest

from bastion.access.models import Action
from bastion.access.policy import check
from bastion.accounts import links, mail
from bastion.audit.services import record

User = get_user_model()
NOT_PENDING = "This user has no open invitation."


def is_pending(user) -> bool:
    """Invited and not yet accepted: inactive, no usable password, never signed in."""
    return not user.is_active and not user.has_usable_password() and user.last_login is None


def _authorise(request: HttpRequest) -> None:
    """Inviting is creating a user: the same permission as the view declares (manage)."""
    if not check(request.user, Action.MANAGE):
        raise PermissionDenied


def _send(request: HttpRequest, user) -> None:
    mail.send("accounts/email/invitation", user.email, {
        "user": user, "inviter": request.user.get_username(), "url": links.make_url(user, links.INVITATION),
        "days": settings.INVITATION_SECONDS // 86400, "site_url": settings.SITE_URL})


def invite(request: HttpRequest, username: str, email: str, roles: Iterable[Group]):
    _authorise(request)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": "A user with this name already exists."})
    with transaction.atomic():
        user = User(username=username, email=email, is_active=False)
        user.set_unusable_password()
        user.save()
        user.groups.set(roles)
        record("invitation.sent", request=request, target=username,
               after={"username": username, "email": email,
                      "roles": sorted(user.groups.values_list("name", flat=True))})
        _send(request, user)
    return user


def resend(request: HttpRequest, user) -> None:
    """A new link; a new unusable password voids the earlier ones."""
    _authorise(request)
    if not is_pending(user):
        raise ValidationError(NOT_PENDING)
    with transaction.atomic():
        user.set_unusable_password()
        user.save(update_fields=["password"])
        record("invitation.sent", request=request, target=user.get_username(),
               details={"resent": True, "email": user.email})
        _send(request, user)


def revoke(request: HttpRequest, user) -> None:
    """The pending account goes away; its links name nobody any more."""
    _authorise(request)
    if not is_pending(user):
        raise ValidationError(NOT_PENDING)
    with transaction.atomic():
        record("invitation.revoked", request=request, target=user.get_username(),
               before={"username": user.get_username(), "email": user.email})
        user.delete()


def accept(request: HttpRequest, form: SetPasswordForm) -> None:
    """Set the chosen password, activate, and sign the invitee in (a new session key)."""
    user = form.save(commit=False)
    _activate(request, user, password=True)
    links.sign_in(request, user, links.INVITATION)


def accept_without_password(request: HttpRequest, user) -> None:
    """SSO-only mode, for an invitee who may not use a password: activate only; they sign in by SSO."""
    _activate(request, user, password=False)


def _activate(request: HttpRequest, user, password: bool) -> None:
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["password", "is_active"])
        record("invitation.accepted", request=request, actor=user, target=user.get_username(),
               details={"password": password})
