"""Audit events for the account life cycle, hooked on Django's and allauth's signals."""

from __future__ import annotations

from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.signals import email_added, email_changed, email_removed, password_changed, password_reset
from allauth.account.signals import user_logged_in as allauth_logged_in
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from bastion.accounts import links, sso
from bastion.accounts.middleware import stamp_new_session
from bastion.audit.services import record

# allauth records each step of a login in the session; second factors are "mfa" steps.
FIRST_FACTORS = {"password": "password", "socialaccount": sso.AUTH_METHOD}


def login_method(request: Any, user: Any) -> str:
    """How this login was proven: an e-mailed link (bastion.accounts.links.sign_in), else its latest
    first-factor step, or "passkey" for a passkey alone."""
    by_link = getattr(request, links.AUTH_METHOD_ATTRIBUTE, None)
    if by_link:
        return by_link
    methods = [r.get("method") for r in get_authentication_records(request, user)]
    first = [m for m in methods if m != "mfa"]
    if first:
        method = FIRST_FACTORS.get(first[-1], str(first[-1]))
        return f"{method}+mfa" if "mfa" in methods else method  # the audit log shows a second factor was used
    return "passkey" if methods else "password"


@receiver(user_logged_in)
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    stamp_new_session(request)
    record("login.success", request=request, actor=user, target=user.get_username(),
           auth_method=login_method(request, user))


@receiver(allauth_logged_in)
def on_sso_login(sender: Any, request: Any, user: Any, sociallogin: Any = None, **kwargs: Any) -> None:
    """Re-apply the identity provider's role claim at every single sign-on, after every factor passed."""
    if sociallogin is not None:
        sso.apply_roles(request, user, sso.claims(sociallogin.account.extra_data))


@receiver(email_added)
def on_email_added(sender: Any, request: Any, user: Any, email_address: Any, **kwargs: Any) -> None:
    record("email.added", request=request, actor=user, target=user.get_username(),
           details={"email": email_address.email})


@receiver(email_removed)
def on_email_removed(sender: Any, request: Any, user: Any, email_address: Any, **kwargs: Any) -> None:
    record("email.removed", request=request, actor=user, target=user.get_username(),
           details={"email": email_address.email})


@receiver(email_changed)
def on_email_changed(sender: Any, request: Any, user: Any, from_email_address: Any, to_email_address: Any,
                     **kwargs: Any) -> None:
    record("email.primary_changed", request=request, actor=user, target=user.get_username(),
           before={"email": getattr(from_email_address, "email", None)}, after={"email": to_email_address.email})


@receiver(user_logged_out)
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is None or request is None:
        return
    expired = getattr(request, "bastion_session_expired", None)
    if expired:
        record("session.expired", request=request, actor=user, target=user.get_username(),
               details={"reason": expired})
    else:
        record("logout", request=request, actor=user, target=user.get_username())


def _password_set(request: Any, user: Any, action: str) -> None:
    if user.must_change_password:
        user.must_change_password = False
        user.save(update_fields=["must_change_password"])
    record(action, request=request, actor=user, target=user.get_username())


@receiver(password_changed)
def on_password_changed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    _password_set(request, user, "password.changed")


@receiver(password_reset)
def on_password_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    _password_set(request, user, "password.reset")
