from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, login clipping, session lifetime and the first administrator."""

    name = "bastion.accounts"
    label = "accounts"

    def ready(self) -> None:
        from bastion.accounts import mfa_signals, signals  # noqa: F401  (audit hooks)
