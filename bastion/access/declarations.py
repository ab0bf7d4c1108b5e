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
    # Multi-factor authentication (allauth.mfa). The second step of a login and a passkey login run
    # before the session is signed in (allauth keeps the half-done login in the session itself).
    "mfa_authenticate": PUBLIC,
    "mfa_login_webauthn": PUBLIC,
    # A signed-in user's own authenticators; changes need recent re-authentication (allauth's
    # MFA_REAUTHENTICATION_REQUIRED) and are audited by bastion.accounts.signals.
    "mfa_index": SIGNED_IN,
    "mfa_reauthenticate": SIGNED_IN,
    "mfa_reauthenticate_webauthn": SIGNED_IN,
    "mfa_activate_totp": SIGNED_IN,
    "mfa_deactivate_totp": SIGNED_IN,
    "mfa_view_recovery_codes": SIGNED_IN,
    "mfa_generate_recovery_codes": SIGNED_IN,
    "mfa_download_recovery_codes": SIGNED_IN,
    "mfa_list_webauthn": SIGNED_IN,
    "mfa_add_webauthn": SIGNED_IN,
    "mfa_edit_webauthn": SIGNED_IN,
    "mfa_remove_webauthn": SIGNED_IN,
    # The user's own sessions (allauth.usersessions): lists and ends only the user's own.
    "usersessions_list": SIGNED_IN,
    # Single sign-on (allauth.socialaccount, OpenID Connect): the round trip to the identity
    # provider runs signed out; the login view acts on POST only (SOCIALACCOUNT_LOGIN_ON_GET off).
    "openid_connect_login": PUBLIC,
    "openid_connect_callback": PUBLIC,
    "socialaccount_login_cancelled": PUBLIC,
    "socialaccount_login_error": PUBLIC,
    "socialaccount_signup": PUBLIC,
    "socialaccount_connections": SIGNED_IN,
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
