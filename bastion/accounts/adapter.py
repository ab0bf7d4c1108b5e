"""allauth adapter: Bastion's policy on top of allauth's login machinery."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SignupForm
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from bastion.accounts import registration, sso, throttle
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.logs import get_logger
from bastion.web.net import client_ip

log = get_logger("bastion.accounts")

TOO_MANY = "Too many failed attempts. Wait a few minutes and try again."


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Accounts are created or invited by administrators; self-registration is opt-in,
        # and closed in SSO-only mode, where a new account could not use its password.
        return settings.SELF_REGISTRATION and not sso.sso_only()

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        if not (commit and isinstance(form, SignupForm)):  # single sign-on's sign-up form is another class
            return super().save_user(request, user, form, commit)
        # Self-registration: saved inactive, without a role, until the e-mailed link is used.
        return registration.register(request, super().save_user(request, user, form, commit=False))

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address Bastion trusts (PROXY_COUNT), for allauth's records such as the Sessions page."""
        return client_ip(request) or super().get_client_ip(request)

    def is_safe_url(self, url: str) -> bool:
        """Only same-host targets, and only HTTPS ones when we are on HTTPS (T19)."""
        request = self.request
        return url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )

    def get_password_change_redirect_url(self, request: HttpRequest) -> str:
        return reverse("home")

    def get_reset_password_from_key_url(self, key: str) -> str:
        # Built from configuration, never from the Host header (T17, T18).
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return settings.SITE_URL + path.replace("UID-KEY", quote(key))

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        if not sso.password_allowed(user):
            # SSO-only mode: no reset link for a password that cannot be used; the page answers as always (T15).
            record("password.reset_refused", request=self.request, outcome=Outcome.DENIED,
                   target=user.get_username(), details={"reason": "sso_only"})
            return
        try:
            super().send_password_reset_mail(user, email, context)
        except OSError as exc:  # smtplib's errors and socket timeouts; a 500 would tell known from unknown (T15)
            log.warning("mail_failed", template="password_reset", error=str(exc)[:200])
            record("password.reset_mail_failed", request=self.request, outcome=Outcome.FAILURE,
                   target=user.get_username(), details={"error": type(exc).__name__})

    def pre_login(self, request: HttpRequest, user: Any, **kwargs: Any) -> HttpResponse | None:
        """SSO-only mode: a non-administrator signs in through the identity provider, not by passkey either."""
        through_sso = "sociallogin" in (kwargs.get("signal_kwargs") or {})
        if not through_sso and not sso.password_allowed(user):
            from allauth.account.internal.stagekit import clear_login

            clear_login(request)
            record("login.refused", request=request, outcome=Outcome.DENIED, target=user.get_username(),
                   details={"reason": "sso_only"})
            messages.error(request, "Sign in with single sign-on.")
            return redirect("account_login")
        return super().pre_login(request, user, **kwargs)

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        username = credentials.get("username") or ""
        if throttle.begin_attempt(client_ip(request), username).refused:
            raise ValidationError(TOO_MANY)
        delay = throttle.delay_for(username)
        if delay:
            time.sleep(delay)  # slows guessing at one account without locking its owner out

    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        user = super().authenticate(request, **credentials)
        if user is not None and not sso.password_allowed(user):
            # SSO-only mode: the right password of a non-administrator fails like a wrong one (T15).
            self.authentication_failed(request, **credentials)
            return None
        if user is not None:
            throttle.attempt_succeeded(client_ip(request), credentials.get("username") or "")
        return user

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        username = credentials.get("username") or ""
        ip = client_ip(request)
        crossed = throttle.attempt_failed(ip, username)
        record("login.failed", request=request, outcome=Outcome.FAILURE, target=username[:150],
               details={"username": username[:150]}, auth_method="password")
        for level in crossed:
            record("login.clipped", request=request, outcome=Outcome.DENIED, target=username[:150],
                   details={"level": level, "username": username[:150]})
            log.warning("alert", rule="login_clipping_level", level=level, ip=ip, username=username[:150])
