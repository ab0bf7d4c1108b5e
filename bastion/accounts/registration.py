"""Self-registration (settings.SELF_REGISTRATION, off by default, and closed in SSO-only mode).

allauth's sign-up form creates the account; Bastion keeps it inactive and without a role and e-mails
an activation link (bastion.accounts.links). allauth's own e-mail verification is not used: its
"mandatory" mode applies to every login, and would lock out the admin-created accounts that have no
verified address. An inactive account cannot sign in at all (Django's is_active), which is stricter.
"""

from __future__ import annotations

from allauth.account import forms as allauth_forms
from allauth.account.utils import filter_users_by_email
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from bastion.accounts import links, mail, sso
from bastion.audit.models import Outcome
from bastion.audit.services import record


class SignupForm(allauth_forms.SignupForm):
    """allauth's sign-up form (settings.ACCOUNT_FORMS), answering a taken e-mail address like a new one (T15).

    allauth hides a taken address only together with mandatory e-mail verification, which Bastion does
    not use (see above). Known limit: a taken *username* still gets allauth's form error, so the sign-up
    page tells whether a username exists; a name has to be unique and the person has to learn to pick
    another one. Turn self-registration off (the default) where usernames must stay private.
    """

    def validate_unique_email(self, value: str) -> str:
        try:
            return super().validate_unique_email(value)
        except ValidationError:  # allauth's "email_taken", the only error it raises here
            self.account_already_exists = True
            return value

    def try_save(self, request: HttpRequest) -> tuple[None, HttpResponse | None]:
        if not self.account_already_exists:
            return super().try_save(request)
        # Nothing is created; the same work (a password hash, an e-mail) and the same answer as a new address.
        make_password(self.cleaned_data["password1"])
        address_taken(request, self.cleaned_data["email"])
        return None, redirect("account_inactive")


def address_taken(request: HttpRequest, email: str) -> None:
    """Tell the owner of ``email`` that someone tried to register with it; what was typed is not repeated."""
    owner = filter_users_by_email(email)[0]
    record("user.registration_refused", request=request, outcome=Outcome.DENIED, target=owner.get_username(),
           details={"reason": "email_taken"})
    mail.send("accounts/email/registration_taken", email, {
        "site_url": settings.SITE_URL, "login_url": settings.SITE_URL + reverse("account_login"),
        "reset_url": settings.SITE_URL + reverse("account_reset_password")})


def is_waiting(user) -> bool:
    """Registered, not yet activated: inactive and never signed in (a deactivated user has signed in)."""
    return not user.is_active and user.last_login is None and user.has_usable_password()


def register(request: HttpRequest, user):
    """Save a signed-up ``user`` inactive, without roles, and e-mail the activation link."""
    with transaction.atomic():
        user.is_active = False
        user.save()
        record("user.registered", request=request, actor=user, target=user.get_username(),
               after={"username": user.get_username(), "email": user.email})
        mail.send("accounts/email/activation", user.email, {
            "user": user, "url": links.make_url(user, links.ACTIVATION),
            "days": settings.INVITATION_SECONDS // 86400, "site_url": settings.SITE_URL})
    return user


def activate(request: HttpRequest, user) -> bool:
    """Activate, and sign in unless SSO-only mode keeps this user's password out; True when signed in.

    The active flag (and the sign-in) change the account's state, so the link is spent.
    """
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        signed_in = sso.password_allowed(user)
        record("user.activated_by_link", request=request, actor=user, target=user.get_username(),
               details={"signed_in": signed_in})
    if signed_in:
        links.sign_in(request, user, links.ACTIVATION)
    return signed_in
