"""allauth adapter: Bastion's policy on top of allauth's login machinery."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from bastion.accounts import throttle
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.logs import get_logger
from bastion.web.net import client_ip

log = get_logger("bastion.accounts")

TOO_MANY = "Too many failed attempts. Wait a few minutes and try again."


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Accounts are created by administrators (self-registration comes, off
        # by default, with the invitations issue).
        return False

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

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        username = credentials.get("username") or ""
        if throttle.begin_attempt(client_ip(request), username).refused:
            raise ValidationError(TOO_MANY)
        delay = throttle.delay_for(username)
        if delay:
            time.sleep(delay)  # slows guessing at one account without locking its owner out

    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        user = super().authenticate(request, **credentials)
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
