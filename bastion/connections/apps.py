from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    """Registered target databases, their encrypted credentials and guarded engines."""

    name = "bastion.connections"
    label = "connections"
