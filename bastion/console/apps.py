from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "bastion.console"
    label = "console"
    verbose_name = "SQL console"
