"""Audit events for a user's own second factors, hooked on allauth.mfa's signals (T16, T33)."""

from __future__ import annotations

from typing import Any

from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authentication_failed, authenticator_added, authenticator_removed, authenticator_reset
from django.dispatch import receiver

from bastion.audit.models import Outcome
from bastion.audit.services import record


def _details(authenticator: Any) -> dict[str, Any]:
    return {"type": authenticator.type, "authenticator": authenticator.pk}


# allauth creates recovery codes together with the first second factor and deletes them with the last
# one; those follow from the event of the factor itself, so one POST writes one event.
FOLLOWS_THE_FACTOR = Authenticator.Type.RECOVERY_CODES


@receiver(authenticator_added)
def on_added(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    if authenticator.type == FOLLOWS_THE_FACTOR:
        return
    record("mfa.added", request=request, actor=user, target=user.get_username(), details=_details(authenticator))


@receiver(authenticator_removed)
def on_removed(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    if authenticator.type == FOLLOWS_THE_FACTOR:
        return
    record("mfa.removed", request=request, actor=user, target=user.get_username(), details=_details(authenticator))


@receiver(authenticator_reset)
def on_reset(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    record("mfa.recovery_codes_regenerated", request=request, actor=user, target=user.get_username(),
           details=_details(authenticator))


@receiver(authentication_failed)
def on_failed(sender: Any, request: Any, user: Any, authenticator: Any = None, **kwargs: Any) -> None:
    details = {"reauthentication": bool(kwargs.get("reauthentication"))}
    if authenticator is not None:
        details.update(_details(authenticator))
    record("mfa.failed", request=request, actor=user, target=user.get_username(), outcome=Outcome.FAILURE,
           details=details, auth_method="mfa")
