from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Roles, grants down to the column, and the one policy function every check goes through."""

    name = "bastion.access"
    label = "access"
