from django.apps import AppConfig


class WebConfig(AppConfig):
    """Layout, home page, error pages and the security middleware."""

    name = "bastion.web"
    label = "web"

    def ready(self) -> None:
        from bastion.web import checks  # noqa: F401  (registers Bastion's deploy checks)
