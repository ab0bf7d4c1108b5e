from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """A Bastion user. Roles are Django groups; grants come with the access app."""

    # Longer than Django's 128: a legacy hash wrapped in Argon2 (bastion.accounts.legacy_hashers) carries the
    # legacy algorithm and salt in front of a full Argon2 hash (T12).
    password = models.CharField("password", max_length=256)
    must_change_password = models.BooleanField(
        default=False,
        help_text="Set for one-time passwords: every page leads to the password change form until it is changed.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class LoginCounter(models.Model):
    """A clipping-level counter or block for failed logins (bastion.accounts.throttle)."""

    key = models.CharField(max_length=100, unique=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}={self.count} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


PENDING_INPUT_LIFETIME = timedelta(minutes=30)


def pending_input_expiry() -> datetime:
    return timezone.now() + PENDING_INPUT_LIFETIME


class PendingInput(models.Model):
    """A form's input kept across a new login after the session ended (bastion.accounts.pending).

    Found by the sha256 of a random single-use key held only in a cookie;
    the input itself is encrypted at rest like connection passwords (T30).
    """

    key_hash = models.CharField(max_length=64, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+",
                              help_text="The user whose session had expired; empty when the session was gone.")
    path = models.CharField(max_length=2000, help_text="The form's full path, query included.")
    data = models.TextField(help_text="The POST fields as JSON {name: [values]}, encrypted (Fernet).")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=pending_input_expiry, db_index=True)

    def __str__(self) -> str:
        return f"pending input for {self.path[:80]} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
