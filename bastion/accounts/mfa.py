"""Multi-factor authentication policy (T16): who must enrol, and an administrator's reset.

allauth.mfa does the enrolment, the second step of a login and re-authentication; this module
decides who may not go on without a second factor, and resets one on an administrator's word.
"""

from __future__ import annotations

from typing import Any

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest

from bastion.access.models import RoleOptions
from bastion.audit.services import record

# Recovery codes alone are not a second factor: they exist only next to one of these.
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def mfa_required(user: Any) -> bool:
    """True when one of the user's roles requires a second factor."""
    return RoleOptions.objects.filter(role__user=user, require_mfa=True).exists()


def has_second_factor(user: Any) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=SECOND_FACTORS).exists()


def enrolled_types(user: Any) -> list[str]:
    """The kinds of authenticator the user holds, as readable labels (for the user admin page)."""
    types = set(Authenticator.objects.filter(user_id=user.pk).values_list("type", flat=True))
    return [str(label) for value, label in Authenticator.Type.choices if value in types]


def must_enrol(user: Any) -> bool:
    """True for a signed-in user whose roles require a second factor they have not enrolled."""
    return mfa_required(user) and not has_second_factor(user)


def reset_mfa(request: HttpRequest, user: Any) -> int:
    """Remove every authenticator of ``user``, end all their sessions, tell them by e-mail.

    For a user who lost their phone or key. Their next sign-in is by password only, and a role
    that requires a second factor sends them to enrolment straight away. Audited as mfa.reset.
    """
    from bastion.accounts.sessions import end_sessions

    with transaction.atomic():
        removed = Authenticator.objects.filter(user_id=user.pk)
        kinds = sorted(set(removed.values_list("type", flat=True)))
        count, _ = removed.delete()
        ended = end_sessions(user)
        record("mfa.reset", request=request, target=user.get_username(),
               details={"authenticators": count, "types": kinds, "sessions_ended": ended})
    if user.email:
        send_mail(
            "Your Bastion two-factor authentication was reset",
            f"Hello {user.get_username()},\n\nAn administrator ({request.user.get_username()}) removed the "
            "second factors (authenticator app, security keys, recovery codes) of your Bastion account and "
            "signed out all your sessions.\n\nIf you did not ask for this, tell your administrator at once.\n\n"
            f"{settings.SITE_URL}/\n",
            None, [user.email], fail_silently=True)
    return count
