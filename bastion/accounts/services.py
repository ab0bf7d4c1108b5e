"""Creating administrators and one-time passwords."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from bastion.access.roles import ADMIN
from bastion.audit.services import record

ONE_TIME_PASSWORD_BYTES = 18  # 24 URL-safe characters


@dataclass(frozen=True)
class NewAdmin:
    username: str
    password: str
    one_time: bool


def one_time_password() -> str:
    return secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)


def create_admin(username: str, password: str | None = None) -> NewAdmin:
    """Create a superuser in the Admin role.

    Without a password, a random one-time password is generated and must be
    changed at first login. A given password must pass the password policy.
    """
    User = get_user_model()
    one_time = password is None
    password = password or one_time_password()
    candidate = User(username=username)
    if not one_time:
        validate_password(password, candidate)
    with transaction.atomic():
        user = User.objects.create_superuser(username=username, email="", password=password)
        user.must_change_password = one_time
        user.save(update_fields=["must_change_password"])
        user.groups.add(Group.objects.get(name=ADMIN))
        record("user.admin_created", target=username, details={"one_time_password": one_time})
    return NewAdmin(username, password, one_time)
