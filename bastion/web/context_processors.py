from django.conf import settings
from django.http import HttpRequest


def bastion(request: HttpRequest) -> dict:
    """Values every template may show: dev-mode banner and the request's correlation id."""
    return {
        "bastion_dev_mode": settings.DEV,
        "request_id": getattr(request, "request_id", ""),
    }
