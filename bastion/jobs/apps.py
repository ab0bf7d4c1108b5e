from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "bastion.jobs"
    label = "jobs"
    verbose_name = "Background jobs"
