from django.apps import AppConfig


class TransferConfig(AppConfig):
    name = "bastion.transfer"
    label = "transfer"
    verbose_name = "Import and export"
