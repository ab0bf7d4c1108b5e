"""Ending sessions one at a time (the user's own), or any user's (permission: manage).

The list itself is allauth's view (/accounts/sessions/), which also ends all other sessions.
"""

from __future__ import annotations

from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from bastion.access.decorators import requires, signed_in
from bastion.access.models import Action
from bastion.accounts.sessions import describe_device, revoke, revoke_others

User = get_user_model()


def _end_one(request: HttpRequest, owner: AbstractBaseUser, session_pk: int) -> None:
    session = get_object_or_404(UserSession, pk=session_pk, user_id=owner.pk)
    if session.session_key == request.session.session_key:
        messages.info(request, "That is the session you are using now: to end it, use Log out.")
        return
    revoke(request, owner, [session], "one")
    messages.success(request, f"Session on {describe_device(session.user_agent)} ({session.ip}) ended.")


@require_POST
@signed_in
def end_own_session(request: HttpRequest, pk: int) -> HttpResponse:
    """404 for a session that is not the user's own: nobody learns which ids exist."""
    _end_one(request, request.user, pk)
    return redirect("usersessions_list")


@require_POST
@requires(Action.MANAGE)
def user_session_end(request: HttpRequest, pk: int, session_pk: int) -> HttpResponse:
    _end_one(request, get_object_or_404(User, pk=pk), session_pk)
    return redirect("accounts:user_detail", pk=pk)


@require_POST
@requires(Action.MANAGE)
def user_sessions_end_all(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    count = revoke_others(request, subject)
    messages.success(request, f"{count} session{'' if count == 1 else 's'} of {subject.username} ended.")
    return redirect("accounts:user_detail", pk=pk)
