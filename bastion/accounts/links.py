"""Signed, expiring, single-use links e-mailed to a user: invitations and account activation (T17).

A token is django.core.signing output (HMAC-SHA256 with SECRET_KEY and a timestamp, salted per
purpose, so an invitation token is no activation token) over the user's id and a fingerprint of the
account's state: a salted HMAC of its password hash, last sign-in, active flag and e-mail address, as
Django's PasswordResetTokenGenerator hashes them. Using a link sets the password, activates the
account and signs the user in, which changes that state, so the link stops working: single use holds
without a table. Resending an invitation draws a new unusable password, which voids earlier links.
The age limit is the signer's max_age (settings.INVITATION_SECONDS), apart from password resets'.

The state only moves forward: a new password hash is random, last_login only grows, and an
administrator's deactivation of a never-signed-in account draws a new unusable password
(bastion.accounts.users.set_active), so toggling the active flag back never revives a link.
A link is checked and used with the user's row locked (user_for inside a transaction), so two
simultaneous uses cannot both pass the check.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac

INVITATION = "bastion.accounts.links.invitation"
ACTIVATION = "bastion.accounts.links.activation"

URL_NAMES = {INVITATION: "invitation_accept", ACTIVATION: "account_activate"}
# How a sign-in by each link is recorded in the audit log (bastion.accounts.signals.login_method).
AUTH_METHODS = {INVITATION: "invitation_link", ACTIVATION: "activation_link"}
AUTH_METHOD_ATTRIBUTE = "bastion_auth_method"
BACKEND = "allauth.account.auth_backends.AuthenticationBackend"


def _fingerprint(user, purpose: str) -> str:
    login = "" if user.last_login is None else user.last_login.replace(microsecond=0, tzinfo=None)
    state = f"{user.pk}|{user.password}|{login}|{user.is_active}|{user.email}"
    return salted_hmac(purpose, state).hexdigest()


def make_url(user, purpose: str) -> str:
    """The absolute link, built from the configured site URL, never from the request's Host (T18)."""
    token = signing.dumps({"user": user.pk, "state": _fingerprint(user, purpose)}, salt=purpose)
    return settings.SITE_URL + reverse(URL_NAMES[purpose], kwargs={"token": token})


def user_for(token: str, purpose: str):
    """The user a valid token names; None for a tampered, expired or used one (no detail on purpose).

    Call it inside transaction.atomic(): the user's row stays locked until the link has been used.
    """
    try:
        data = signing.loads(token, salt=purpose, max_age=settings.INVITATION_SECONDS)
    except signing.BadSignature:  # SignatureExpired included
        return None
    user = get_user_model().objects.select_for_update().filter(pk=data["user"]).first()
    if user is None or not constant_time_compare(data["state"], _fingerprint(user, purpose)):
        return None
    return user


def sign_in(request: HttpRequest, user, purpose: str) -> None:
    """Sign ``user`` in by the link of ``purpose`` (a new session key), audited with that link as the method."""
    setattr(request, AUTH_METHOD_ATTRIBUTE, AUTH_METHODS[purpose])
    login(request, user, backend=BACKEND)
