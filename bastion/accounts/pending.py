"""Work survives an expired session: a form's input kept across the new login.

Usage, outside the permission declaration so the declaration stays readable::

    @keeps_input
    @requires(Action.UPDATE, resource=table_resource)
    def row_edit(request, ...):
        data = request.POST if request.method == "POST" else request.resumed_post
        form = RowForm(data, ...)   # bound, not saved: the user reviews and saves

How it works:

- A POST reaching the view anonymously because its session just expired
  (SessionTimeoutMiddleware let the POST go on after the logout and named the
  user in ``request.bastion_expired_user_id``) has passed Django's CSRF check.
  Its fields, minus the CSRF token, are stored encrypted (T30) in a PendingInput
  row bound to that user and found by the sha256 of a random key; the key goes
  to the browser in an HttpOnly, SameSite=Lax cookie, never in a URL. Uploaded
  files are not kept. The browser is sent to the login page with
  ``?next=<the form's path>``. A POST without any session is not kept: its
  author is unknown, and whoever signs in next on that browser must not get it.
- The first GET of a @keeps_input view by a signed-in user with that cookie
  consumes the row, whatever happens next (single use): its input is given to
  the view as ``request.resumed_post`` (a QueryDict) when the row is for this
  very path, has not expired, and belongs to this user.
  Otherwise, and on every other request, ``request.resumed_post`` is None.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone

from bastion.access.decorators import Kind, declared_permission
from bastion.accounts.models import PENDING_INPUT_LIFETIME, PendingInput
from bastion.audit.services import record
from bastion.connections.crypto import InvalidToken, decrypt_secret, encrypt_secret
from bastion.logs import get_logger

log = get_logger("bastion.accounts")

MAX_FIELDS = 200  # values, counting every value of a repeated field
MAX_BYTES = 1_000_000  # the JSON of the kept fields, UTF-8
SKIPPED_FIELDS = frozenset({"csrfmiddlewaretoken"})

RESUMED_MESSAGE = ("Your session had ended: what you typed was kept. Check it and save again "
                   "(files you had chosen must be chosen again).")
"""What a view shows when it binds its form with request.resumed_post."""

ViewFunction = Callable[..., HttpResponse]


def cookie_name() -> str:
    # Named like the session cookie: the __Host- prefix makes browsers refuse it unless Secure, path /.
    return "bastion_pending" if settings.DEV else "__Host-bastion_pending"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _fields(request: HttpRequest) -> dict[str, list[str]] | None:
    """The POST fields to keep, or None when they are over the limits."""
    fields = {name: request.POST.getlist(name) for name in request.POST if name not in SKIPPED_FIELDS}
    if sum(len(values) for values in fields.values()) > MAX_FIELDS:
        return None
    return fields


def _purge_expired() -> None:
    PendingInput.objects.filter(expires_at__lte=timezone.now()).delete()


def _stash(request: HttpRequest) -> HttpResponse | None:
    """Keep the anonymous POST and send the browser to the login page; None when it cannot be kept."""
    path = request.get_full_path()
    fields = _fields(request)
    text = json.dumps(fields, ensure_ascii=False, separators=(",", ":")) if fields is not None else ""
    if fields is None or len(text.encode("utf-8")) > MAX_BYTES or len(path) > 2000:
        log.info("pending_input_too_large", path=request.path[:500])
        return None
    owner_id = getattr(request, "bastion_expired_user_id", None)
    owner = get_user_model().objects.filter(pk=owner_id).first() if owner_id is not None else None
    if owner is None:
        # Only input from a session that just expired is kept, for its own user: input whose author is
        # unknown could be handed to whoever signs in next on this browser.
        return None
    _purge_expired()
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        previous = request.COOKIES.get(cookie_name())
        if previous:  # one pending form per browser: the newest wins
            PendingInput.objects.filter(key_hash=_hash(previous)).delete()
        PendingInput.objects.create(key_hash=_hash(key), owner=owner, path=path, data=encrypt_secret(text))
        # The request is anonymous: the event names the user the input is kept for, not an actor.
        record("session.input_kept", request=request, target=path[:500],
               details={"path": path[:500], "owner": owner.get_username(), "owner_id": owner.pk,
                        "files_dropped": bool(request.FILES)})
    minutes = int(PENDING_INPUT_LIFETIME.total_seconds() // 60)
    messages.info(request, f"What you entered is kept for {minutes} minutes: sign in to go back to it"
                           f"{' (files you had chosen are not kept)' if request.FILES else ''}.")
    response = redirect_to_login(path)
    response.set_cookie(cookie_name(), key, max_age=int(PENDING_INPUT_LIFETIME.total_seconds()), path="/",
                        secure=not settings.DEV, httponly=True, samesite="Lax")
    return response


def _query_dict(fields: Any) -> QueryDict | None:
    if not isinstance(fields, dict):
        return None
    data = QueryDict(mutable=True)
    for name, values in fields.items():
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            return None
        data.setlist(name, values)
    data._mutable = False
    return data


def _take(request: HttpRequest, key: str) -> QueryDict | None:
    """Consume the row behind ``key``: its input when it is this user's, for this path, and current."""
    with transaction.atomic():
        pending = PendingInput.objects.select_for_update().filter(key_hash=_hash(key)).first()
        if pending is not None:
            pending.delete()  # single use, whatever follows
    _purge_expired()
    if pending is None or pending.expires_at <= timezone.now() or pending.path != request.get_full_path():
        return None
    if pending.owner_id != request.user.pk:
        return None
    try:
        data = _query_dict(json.loads(decrypt_secret(pending.data)))
    except (InvalidToken, ValueError):
        log.warning("pending_input_unreadable", path=request.path[:500])
        return None
    return data


def keeps_input(view: ViewFunction) -> ViewFunction:
    """Let a form view's input survive an expired session; see the module docstring.

    Goes above the view's permission decorator (@requires or @signed_in): a
    public view would have its anonymous POSTs kept instead of handled.
    """
    declaration = declared_permission(view)
    if declaration is None or declaration.kind == Kind.PUBLIC:
        raise ImproperlyConfigured(f"@keeps_input goes above the @requires or @signed_in of {view.__qualname__}")

    @wraps(view)  # keeps the permission declaration (bastion.access.decorators.ATTRIBUTE)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.resumed_post = None
        signed_in = request.user.is_authenticated
        if request.method == "POST" and not signed_in:
            kept = _stash(request)
            if kept is not None:
                return kept
            messages.warning(request, "What you submitted could not be kept while you sign in again.")
            return view(request, *args, **kwargs)  # the permission check sends it to the login page
        key = request.COOKIES.get(cookie_name())
        if request.method != "GET" or not signed_in or not key:
            return view(request, *args, **kwargs)
        request.resumed_post = _take(request, key)
        response = view(request, *args, **kwargs)
        response.delete_cookie(cookie_name(), path="/", samesite="Lax")
        return response

    return wrapped
