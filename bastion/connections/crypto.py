"""Secrets at rest (T30): connection passwords and MFA secrets as MultiFernet tokens.

The keys live outside the database (settings.ENCRYPTION_KEYS, newest first), so
a copy of the metadata database alone reveals no password. Rotation re-encrypts
every token with the newest key; afterwards the older keys can be dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

__all__ = ["InvalidToken", "decrypt_secret", "encrypt_secret", "rotate_all"]


def _fernet(keys: Sequence[str] | None = None) -> MultiFernet:
    # Built per call (cheap), so a changed key list takes effect without a restart.
    keys = list(settings.ENCRYPTION_KEYS if keys is None else keys)
    if not keys:
        raise ImproperlyConfigured("No encryption key configured: run `bastion init` or set BASTION_ENCRYPTION_KEYS.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured("An encryption key is not a valid Fernet key (32 url-safe base64 bytes).") from None


def encrypt_secret(text: str) -> str:
    """A token for ``text``, encrypted and authenticated with the newest key."""
    return _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The text inside ``token``; raises cryptography's InvalidToken when no configured key opens it."""
    return _fernet().decrypt(token.encode("ascii")).decode("utf-8")


# The Fernet-encrypted fields of allauth.mfa authenticators (bastion.accounts.mfa_adapter), by type.
MFA_SECRET_FIELDS = {"totp": "secret", "recovery_codes": "seed"}


def _rotate_mfa_secrets(fernet: MultiFernet) -> int:
    from allauth.mfa.models import Authenticator

    rotated = 0
    for authenticator in Authenticator.objects.select_for_update().filter(type__in=MFA_SECRET_FIELDS):
        field = MFA_SECRET_FIELDS[authenticator.type]
        data = dict(authenticator.data)
        data[field] = fernet.rotate(data[field].encode("ascii")).decode("ascii")
        Authenticator.objects.filter(pk=authenticator.pk).update(data=data)
        rotated += 1
    return rotated


def rotate_all(*, keys: Sequence[str] | None = None, actor: Any = None) -> int:
    """Re-encrypt every stored connection password and MFA secret with the newest key; returns how many.

    All or nothing: one transaction, rows locked, one audit event. ``keys``
    overrides settings.ENCRYPTION_KEYS (newest first) for a command that has
    just generated a key it has not yet written to the key file.
    """
    from bastion.audit.services import record
    from bastion.connections.models import Connection

    fernet = _fernet(keys)
    rotated = 0
    with transaction.atomic():
        rows = Connection.objects.select_for_update().exclude(password_encrypted="").order_by("pk")
        for pk, token in rows.values_list("pk", "password_encrypted"):
            new_token = fernet.rotate(token.encode("ascii")).decode("ascii")
            # update(), not save(): the password did not change, so updated_at
            # (the engine cache key) must not either.
            Connection.objects.filter(pk=pk).update(password_encrypted=new_token)
            rotated += 1
        mfa_secrets = _rotate_mfa_secrets(fernet)
        record("connection.keys_rotated", actor=actor, target="connections",
               details={"count": rotated, "mfa_secrets": mfa_secrets})
        rotated += mfa_secrets
    return rotated
