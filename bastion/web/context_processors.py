from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from bastion.access.policy import allowed_actions


def bastion(request: HttpRequest) -> dict:
    """Values every template may show: dev-mode banner, correlation id, global permissions.

    ``can`` only decides which links to show; every view checks for itself.
    """
    user = getattr(request, "user", None)
    return {
        "bastion_dev_mode": settings.DEV,
        "request_id": getattr(request, "request_id", ""),
        "can": SimpleLazyObject(lambda: allowed_actions(user) if user is not None else frozenset()),
    }
