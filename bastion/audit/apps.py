from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Append-only, hash-chained record of who did what (T33, T34)."""

    name = "bastion.audit"
    label = "audit"
