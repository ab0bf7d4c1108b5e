from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, login clipping, session lifetime and the first administrator."""

    name = "bastion.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from bastion.accounts import signals  # noqa: F401  (audit hooks)
        from bastion.accounts.roles import ensure_builtin_roles

        post_migrate.connect(ensure_builtin_roles, dispatch_uid="bastion.builtin_roles")
