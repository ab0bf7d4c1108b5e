from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "bastion.explorer"
    label = "explorer"
    verbose_name = "Data explorer"
