"""Permissions of views Bastion includes but did not write, by URL name (T20).

django-allauth's account views (under /accounts/) check sign-in themselves:
the login, sign-up and password-reset pages must work signed out, and the
account pages use allauth's own login_required. They cannot carry our
decorator, so their declaration lives here, in one place a reviewer can read.
An entry applies only to a view that really comes from allauth (or subclasses
one of its views, like our clipped login view), so a Bastion view cannot
borrow an entry by taking one of these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.urls import ResolverMatch

from bastion.access.decorators import PUBLIC, SIGNED_IN, Declaration, declared_permission

THIRD_PARTY_PACKAGES = ("allauth.",)

THIRD_PARTY: dict[str, Declaration] = {
    # Signing in, and getting back in without a session.
    "account_login": PUBLIC,
    "account_signup": PUBLIC,  # closed by the adapter: answers "sign-up closed"
    "account_confirm_login_code": PUBLIC,
    "account_inactive": PUBLIC,
    "account_email_verification_sent": PUBLIC,
    "account_confirm_email": PUBLIC,
    "account_reset_password": PUBLIC,
    "account_reset_password_done": PUBLIC,
    "account_reset_password_from_key": PUBLIC,
    "account_reset_password_from_key_done": PUBLIC,
    # Signing out works from any state; allauth only acts on POST.
    "account_logout": PUBLIC,
    # A signed-in user's own account.
    "account_change_password": SIGNED_IN,
    "account_set_password": SIGNED_IN,
    "account_email": SIGNED_IN,
    "account_reauthenticate": SIGNED_IN,
}


def _is_third_party(view: Callable[..., Any]) -> bool:
    classes = getattr(getattr(view, "view_class", None), "__mro__", ())
    modules = [getattr(view, "__module__", "")] + [c.__module__ for c in classes]
    return any(m.startswith(THIRD_PARTY_PACKAGES) for m in modules)


def declaration_for(match: ResolverMatch) -> Declaration | None:
    """The permission a resolved URL declares: the view's own, else its third-party entry."""
    own = declared_permission(match.func)
    if own is not None:
        return own
    if _is_third_party(match.func):
        return THIRD_PARTY.get(match.view_name)
    return None
