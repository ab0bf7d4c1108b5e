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
