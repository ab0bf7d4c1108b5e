from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A Bastion user. Roles are Django groups; grants come with the access app."""

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
