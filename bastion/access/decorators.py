"""Every view declares the permission it needs (T20).

Functions:   @requires(Action.VIEW, resource=table_of), @signed_in, @public
Classes:     class Page(DeclaredPermissionMixin, View): permission = Requires(Action.MANAGE)

A declaration is both enforced (anonymous -> login page, signed in without the
grant -> PermissionDenied, i.e. the audited 403 page) and readable by
declared_permission(), which the T20 matrix test uses to cover every URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse

from bastion.access.models import Action
from bastion.access.policy import Resource, check

ATTRIBUTE = "bastion_permission"

ResourceOf = Callable[..., Resource | None]
"""(request, **view_kwargs) -> the Resource the request is about; None means the global scope."""


class Kind(StrEnum):
    PUBLIC = "public"  # no sign-in: the login page, CSP reports
    SIGNED_IN = "signed_in"  # any signed-in user: the home page
    REQUIRES = "requires"  # a grant for an action on a resource


@dataclass(frozen=True)
class Declaration:
    kind: Kind
    action: Action | None = None
    resource: ResourceOf | None = None

    def resource_for(self, request: HttpRequest, view_kwargs: dict[str, Any]) -> Resource:
        found = self.resource(request, **view_kwargs) if self.resource else None
        return found if found is not None else Resource()


PUBLIC = Declaration(Kind.PUBLIC)
SIGNED_IN = Declaration(Kind.SIGNED_IN)


def Requires(action: Action | str, resource: ResourceOf | None = None) -> Declaration:
    """A declaration that the view needs ``action`` on ``resource(request, **kwargs)``."""
    return Declaration(Kind.REQUIRES, Action(action), resource)


def enforce(declaration: Declaration, request: HttpRequest, view_kwargs: dict[str, Any]) -> HttpResponse | None:
    """None when the request may go on; a login redirect for anonymous users; raises PermissionDenied."""
    if declaration.kind == Kind.PUBLIC:
        return None
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if declaration.kind == Kind.SIGNED_IN:
        return None
    if not check(request.user, declaration.action, declaration.resource_for(request, view_kwargs)):
        raise PermissionDenied
    return None


ViewFunction = Callable[..., HttpResponse]


def _declare(declaration: Declaration) -> Callable[[ViewFunction], ViewFunction]:
    def decorator(view: ViewFunction) -> ViewFunction:
        if declared_permission(view) is not None:
            raise ImproperlyConfigured(f"{view.__qualname__} already declares its permission")

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            refused = enforce(declaration, request, kwargs)
            return refused if refused is not None else view(request, *args, **kwargs)

        setattr(wrapped, ATTRIBUTE, declaration)
        return wrapped
    return decorator


def requires(action: Action | str, resource: ResourceOf | None = None) -> Callable[[ViewFunction], ViewFunction]:
    """The view needs ``action`` on ``resource(request, **view_kwargs)`` (the global scope by default)."""
    return _declare(Requires(action, resource))


def signed_in(view: ViewFunction) -> ViewFunction:
    """Any signed-in user may use the view."""
    return _declare(SIGNED_IN)(view)


def public(view: ViewFunction) -> ViewFunction:
    """Anybody may use the view, signed in or not."""
    return _declare(PUBLIC)(view)


class DeclaredPermissionMixin:
    """Class-based views: set ``permission`` to PUBLIC, SIGNED_IN or Requires(...)."""

    permission: Declaration | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if self.permission is None:
            raise ImproperlyConfigured(f"{type(self).__name__} does not declare its permission")
        refused = enforce(self.permission, request, kwargs)
        return refused if refused is not None else super().dispatch(request, *args, **kwargs)


def declared_permission(view: Callable[..., Any]) -> Declaration | None:
    """The declaration of a view function, or of the class behind an as_view() function."""
    declaration = getattr(view, ATTRIBUTE, None)
    if declaration is not None:
        return declaration
    view_class = getattr(view, "view_class", None)
    if isinstance(view_class, type) and issubclass(view_class, DeclaredPermissionMixin):
        return view_class.permission
    return None
