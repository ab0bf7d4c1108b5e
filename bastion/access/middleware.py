"""Defence in depth for T20: a view without a declared permission is never run.

The T20 matrix test catches an undeclared view before it ships; this
middleware closes the gap at run time too (the 403 page, and an error log line
naming the view). Third-party views declared in bastion.access.declarations
are enforced here, on top of their own checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from bastion.access.declarations import declaration_for
from bastion.access.decorators import declared_permission, enforce
from bastion.logs import get_logger

log = get_logger("bastion.access")


class DeclaredPermissionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., Any], view_args: tuple[Any, ...],
                     view_kwargs: dict[str, Any]) -> HttpResponse | None:
        match = request.resolver_match
        declaration = declaration_for(match) if match is not None else declared_permission(view)
        if declaration is None:
            log.error("view_without_permission", view=f"{view.__module__}.{getattr(view, '__qualname__', view)}",
                      path=request.path[:500])
            raise PermissionDenied
        if declared_permission(view) is None:
            return enforce(declaration, request, view_kwargs)  # a third-party view: enforce its entry
        return None  # the view's own decorator or mixin enforces it
