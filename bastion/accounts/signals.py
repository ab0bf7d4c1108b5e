"""Audit events for the account life cycle, hooked on Django's and allauth's signals."""

from __future__ import annotations

from typing import Any

from allauth.account.signals import password_changed, password_reset
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver

from bastion.accounts.middleware import stamp_new_session
from bastion.audit.services import record


@receiver(user_logged_in)
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    stamp_new_session(request)
    record("login.success", request=request, actor=user, target=user.get_username(), auth_method="password")


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
