from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Roles, grants down to the column, and the one policy function every check goes through."""

    name = "bastion.access"
    label = "access"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from bastion.access.roles import ensure_builtin_roles

        post_migrate.connect(ensure_builtin_roles, sender=self, dispatch_uid="bastion.access.builtin_roles")
