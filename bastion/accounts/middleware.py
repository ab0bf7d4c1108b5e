"""Session lifetime (T10) and the forced change of one-time passwords.

An expired session is ended on any request. A GET is sent to the login page at
once; a POST continues as an anonymous request carrying
``request.bastion_expired_user_id``, so a form view can keep what was typed
(bastion.accounts.pending.keeps_input) and every other view refuses it as for
any anonymous user.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from bastion.web.errors import error_response

STARTED = "bastion_started"
SEEN = "bastion_seen"
# Writing the session on every request costs a database write; a minute of
# slack on the idle timeout is the price of not doing so.
SEEN_RESOLUTION = 60


def stamp_new_session(request: HttpRequest) -> None:
    now = int(time.time())
    request.session[STARTED] = now
    request.session[SEEN] = now


class SessionTimeoutMiddleware:
    """Ends sessions idle for too long or older than the absolute lifetime."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            started = request.session.get(STARTED, 0)
            seen = request.session.get(SEEN, 0)
            reason = None
            if now - started > settings.SESSION_ABSOLUTE_TIMEOUT:
                reason = "absolute"
            elif now - seen > settings.SESSION_IDLE_TIMEOUT:
                reason = "idle"
            if reason:
                request.bastion_session_expired = reason  # audited by the logout signal
                user_id = request.user.pk
                logout(request)
                messages.info(request, "Your session has expired. Please sign in again.")
                if request.method != "POST":
                    return redirect_to_login(request.get_full_path(), reverse(settings.LOGIN_URL))
                # A POST goes on as anonymous: the CSRF check still runs on it (logout
                # keeps the CSRF cookie), a form view marked @keeps_input stashes its
                # input for this user (bastion.accounts.pending), and every other
                # declared view sends the anonymous request to the login page.
                request.bastion_expired_user_id = user_id
                return self.get_response(request)
            if now - seen >= SEEN_RESOLUTION:
                request.session[SEEN] = now
        return self.get_response(request)


class PasswordChangeRequiredMiddleware:
    """A user holding a one-time password reaches nothing but the password change form."""

    ALLOWED = ("account_change_password", "account_logout")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.must_change_password:
            allowed = {reverse(name) for name in self.ALLOWED}
            if request.path not in allowed and not request.path.startswith(settings.STATIC_URL):
                messages.warning(request, "Choose a new password before you continue: "
                                          "the one you signed in with was for one use only.")
                return redirect("account_change_password")
        return self.get_response(request)


class MFARequiredMiddleware:
    """A member of a role that requires MFA reaches nothing but enrolment until they have a second factor (T16).

    Enforced here, on every route, not on the login page only: a session signed in by password alone
    (before the role changed, or by any other way in) is held at the enrolment pages too.
    """

    ALLOWED = frozenset({
        "mfa_index", "mfa_activate_totp", "mfa_totp_qr", "mfa_add_webauthn", "mfa_reauthenticate",
        "mfa_reauthenticate_webauthn", "account_reauthenticate", "account_logout", "csp_report",
        "account_change_password",  # a one-time password is replaced first (PasswordChangeRequiredMiddleware)
    })

    HELD = "bastion_mfa_held"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., HttpResponse], view_args: tuple,
                     view_kwargs: dict) -> HttpResponse | None:
        from bastion.accounts.mfa import must_enrol

        user = request.user
        if not user.is_authenticated or request.resolver_match.url_name in self.ALLOWED:
            return None
        if not must_enrol(user):
            if request.session.pop(self.HELD, False):
                request.session.cycle_key()  # the hold is lifted: more privilege, a new session key (T09)
            return None
        request.session[self.HELD] = True
        if request.method in ("GET", "HEAD"):
            messages.warning(request, "Your role requires two-factor authentication. Set up an authenticator "
                                      "app or a security key before you continue.")
            return redirect("mfa_index")
        return error_response(request, 403, "Set up two-factor authentication before you continue: "
                                            "your role requires it.")
