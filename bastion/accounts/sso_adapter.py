"""allauth's social-login adapter with Bastion's single sign-on policy (OpenID Connect, T16).

- An unknown identity gets an account only when BASTION_OIDC_AUTO_PROVISION is on; its username comes
  from preferred_username or the e-mail address (sanitised, made unique), its password is unusable.
- An identity is never matched to an existing local account by its e-mail address unless the admin
  opted in (BASTION_OIDC_LINK_BY_EMAIL) and the provider marks the address verified: otherwise whoever
  controls an address at the provider would take over the Bastion account holding it.
- Every failure of the round trip (bad state, refused code, unreachable provider) is audited once.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.utils import filter_users_by_email
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base.constants import AuthError
from django.conf import settings
from django.http import HttpRequest
from django.shortcuts import render

from bastion.accounts.sso import AUTH_METHOD
from bastion.audit.middleware import mark_audited
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.web.errors import error_response

NO_ACCOUNT = ("There is no Bastion account for this sign-in. Ask a Bastion administrator to create one "
              "for you.")
EMAIL_TAKEN = ("A Bastion account with this e-mail address already exists and is not linked to single "
               "sign-on. Ask a Bastion administrator to link it.")


def _identity(sociallogin: SocialLogin) -> str:
    return f"{sociallogin.account.provider}:{sociallogin.account.uid}"[:150]


def _refuse(request: HttpRequest, sociallogin: SocialLogin, reason: str, message: str) -> None:
    record("login.failed", request=request, outcome=Outcome.FAILURE, target=_identity(sociallogin),
           details={"reason": reason, "identity": _identity(sociallogin)}, auth_method=AUTH_METHOD)
    raise ImmediateHttpResponse(mark_audited(error_response(request, 403, message)))


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return bool(settings.OIDC_AUTO_PROVISION)

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Refuse, with a plain message, what allauth would turn into a sign-up form."""
        if sociallogin.is_existing:
            return
        if not self.is_open_for_signup(request, sociallogin):
            _refuse(request, sociallogin, "no_account", NO_ACCOUNT)
        emails = [address.email for address in sociallogin.email_addresses]
        if any(filter_users_by_email(email) for email in emails):
            _refuse(request, sociallogin, "email_taken", EMAIL_TAKEN)

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        email = data.get("email") or ""
        # generate_unique_username sanitises each candidate and appends digits until it is free.
        user.username = get_account_adapter(request).generate_unique_username(
            [data.get("username"), email.partition("@")[0], "user"])
        return user

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)  # sets an unusable password
        record("user.created", request=request, actor=user, target=user.get_username(),
               after={"username": user.get_username(), "email": user.email, "identity": _identity(sociallogin)},
               details={"provisioned_by": "sso"}, auth_method=AUTH_METHOD)
        return user

    def on_authentication_error(self, request: HttpRequest, provider: Any, error: Any = None,
                                exception: Any = None, extra_context: Any = None) -> None:
        """Audit the failed round trip and answer allauth's error page, marked audited (one event)."""
        if error == AuthError.CANCELLED:  # the user chose to go back; allauth shows its page
            return
        record("login.failed", request=request, outcome=Outcome.FAILURE, target=getattr(provider, "id", ""),
               details={"reason": str(error or "unknown"),
                        "exception": type(exception).__name__ if exception else ""},
               auth_method=AUTH_METHOD)
        response = render(request, "socialaccount/authentication_error.html",
                          {"auth_error": {"provider": provider, "code": error}}, status=401)
        raise ImmediateHttpResponse(mark_audited(response))
