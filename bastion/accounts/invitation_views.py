"""Invitations (admin pages, permission: manage) and the public pages e-mailed links open.

A link that is tampered with, expired or used gets one plain page with no detail (T17). The public
pages run in one transaction each: links.user_for locks the user's row from the token check to its use.
In SSO-only mode a link activates an account that may not use a password, and sends its owner to
sign in with single sign-on: it sets no password and signs nobody in.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from bastion.access.decorators import public, requires
from bastion.access.models import Action
from bastion.accounts import invitations, links, registration, sso
from bastion.accounts.forms import NewUserForm
from bastion.web.errors import validation_message

User = get_user_model()
INVITATION_INVALID = "This invitation link is not valid any more; ask your administrator for a new one."
ACTIVATION_INVALID = ("This activation link is not valid any more. If your account is not active yet, "
                      "ask your administrator.")
USE_SSO = "Your account is active. Sign in with single sign-on: Bastion does not use a password for your account."


class InvitationForm(NewUserForm):
    email = forms.EmailField(help_text="The invitation link is sent to this address.")


def _link_invalid(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/link_invalid.html", {"message": message}, status=400)


def _to_sso_login(request: HttpRequest) -> HttpResponse:
    messages.info(request, USE_SSO)
    return redirect("account_login")


@require_http_methods(["GET", "POST"])
@requires(Action.MANAGE)
def invite(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            invited = invitations.invite(request, form.cleaned_data["username"], form.cleaned_data["email"],
                                         form.cleaned_data["roles"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return render(request, "accounts/invitation_sent.html",
                          {"invited": invited, "days": settings.INVITATION_SECONDS // 86400})
    return render(request, "accounts/invitation_new.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@requires(Action.MANAGE)
def invitation_resend(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    try:
        invitations.resend(request, subject)
    except ValidationError as exc:
        messages.error(request, validation_message(exc))
    else:
        messages.success(request, f"A new invitation link was sent to {subject.email}; earlier links no longer work.")
    return redirect("accounts:user_detail", pk=subject.pk)


@require_POST
@requires(Action.MANAGE)
def invitation_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    subject = get_object_or_404(User, pk=pk)
    try:
        invitations.revoke(request, subject)
    except ValidationError as exc:
        messages.error(request, validation_message(exc))
        return redirect("accounts:user_detail", pk=subject.pk)
    messages.success(request, f"The invitation of {subject.username} was revoked.")
    return redirect("accounts:user_list")


@require_http_methods(["GET", "POST"])
@public
@transaction.atomic
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitee = links.user_for(token, links.INVITATION)
    if invitee is None or not invitations.is_pending(invitee):
        return _link_invalid(request, INVITATION_INVALID)
    if not sso.password_allowed_once_active(invitee):
        if request.method == "POST":
            invitations.accept_without_password(request, invitee)
            return _to_sso_login(request)
        return render(request, "accounts/invitation_accept.html", {"invitee": invitee, "sso_only": True})
    form = SetPasswordForm(invitee, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        invitations.accept(request, form)
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/invitation_accept.html", {"form": form, "invitee": invitee},
                  status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@public
@transaction.atomic
def account_activate(request: HttpRequest, token: str) -> HttpResponse:
    """GET only shows a button: mail scanners that open links must not activate anything."""
    registrant = links.user_for(token, links.ACTIVATION)
    if registrant is None or not registration.is_waiting(registrant):
        return _link_invalid(request, ACTIVATION_INVALID)
    if request.method == "POST":
        signed_in = registration.activate(request, registrant)
        return redirect(settings.LOGIN_REDIRECT_URL) if signed_in else _to_sso_login(request)
    return render(request, "accounts/activate.html",
                  {"registrant": registrant, "sso_only": not sso.password_allowed_once_active(registrant)})
