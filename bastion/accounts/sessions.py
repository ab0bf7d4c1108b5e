"""A user's sessions (T10), kept in allauth.usersessions' UserSession records.

allauth writes a record at each allauth login; SessionActivityMiddleware writes one for a
session that has none (signed in before usersessions was installed, or by Django's login()
alone) on its first request, and refreshes address and last-seen time at most once a minute.
So the records cover every session in use, and ending a user's sessions ends their records'
sessions without scanning the session store. A session unused since before the upgrade has
no record, but it meets the idle timeout first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from allauth.core import context
from allauth.usersessions.adapter import DefaultUserSessionsAdapter
from allauth.usersessions.models import UserSession
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse

from bastion.accounts.middleware import SEEN
from bastion.audit.services import record

TRACKED = "bastion_tracked"

# The first name that matches wins: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS = (("Edg", "Edge"), ("OPR", "Opera"), ("Firefox", "Firefox"), ("FxiOS", "Firefox"),
             ("CriOS", "Chrome"), ("Chromium", "Chromium"), ("HeadlessChrome", "Chrome"), ("Chrome", "Chrome"),
             ("Safari", "Safari"))
_SYSTEMS = (("Windows", "Windows"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Android", "Android"),
            ("CrOS", "ChromeOS"), ("Mac OS X", "macOS"), ("Linux", "Linux"))
_PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9._-]{0,30})/")


def describe_device(user_agent: str) -> str:
    """A short, plain summary such as "Firefox on Windows"; the product name of other clients (curl)."""
    browser = next((name for token, name in _BROWSERS if re.search(rf"\b{token}/", user_agent)), "")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "")
    if browser:
        return f"{browser} on {system}" if system else browser
    product = _PRODUCT.match(user_agent)
    return product.group(1) if product and product.group(1) != "Mozilla" else "Unknown browser"


def sessions_of(user: AbstractBaseUser) -> list[UserSession]:
    """The user's live sessions, oldest first (records of ended sessions are dropped, as allauth's list does)."""
    return sorted(UserSession.objects.purge_and_list(user), key=lambda s: s.created_at)


def _end(sessions: Iterable[UserSession]) -> int:
    """End each session still alive (dropping records of dead ones); how many were alive."""
    ended = 0
    for session in sessions:
        if not session.purge():
            session.end()
            ended += 1
    return ended


def _others(user: AbstractBaseUser, keep: HttpRequest | None) -> list[UserSession]:
    kept = keep.session.session_key if keep is not None else None
    return [s for s in UserSession.objects.filter(user_id=user.pk) if s.session_key != kept]


def end_sessions(user: AbstractBaseUser, *, keep: HttpRequest | None = None) -> int:
    """End every session of ``user`` but ``keep``'s; how many were ended.

    Writes no audit event: the caller's own event (such as an MFA reset) says why.
    """
    return _end(_others(user, keep))


def revoke(request: HttpRequest, owner: AbstractBaseUser, sessions: Iterable[UserSession], scope: str) -> int:
    """End ``owner``'s ``sessions`` (never the current one) as the one audited change of ``request``."""
    count = _end(sessions)
    record("session.revoked", request=request, target=owner.get_username(),
           details={"count": count, "scope": scope})
    return count


def revoke_others(request: HttpRequest, owner: AbstractBaseUser) -> int:
    """End all of ``owner``'s sessions but the current one, audited."""
    mine = owner.pk == request.user.pk
    return revoke(request, owner, _others(owner, request), "others" if mine else "all")


class UserSessionsAdapter(DefaultUserSessionsAdapter):
    """allauth's "sign out other sessions" form ends them through here: audited like Bastion's views."""

    def end_sessions(self, sessions: Iterable[UserSession]) -> None:
        sessions = list(sessions)
        request = context.request
        owner = sessions[0].user if sessions else request.user
        revoke(request, owner, sessions, "others")


class SessionActivityMiddleware:
    """Records the session's address and last activity at most once per idle-timeout stamp.

    allauth's own tracking (USERSESSIONS_TRACK_ACTIVITY) writes the record on every request.
    Here the record is written when the session has none yet for its key, or when
    SessionTimeoutMiddleware (which must come first) has just moved the last-seen stamp,
    which it does at most once a minute; the session then is saved once for both.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        if request.user.is_authenticated and session.session_key:
            mark = [session.session_key, session.get(SEEN)]
            if session.get(TRACKED) != mark:
                UserSession.objects.create_from_request(request)
                session[TRACKED] = mark
        return self.get_response(request)
