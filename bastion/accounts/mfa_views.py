"""Bastion's views around allauth.mfa: the enrolment QR code as an image, an administrator's MFA reset."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate
from allauth.mfa.adapter import get_adapter
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from allauth.mfa.webauthn.views import RemoveWebAuthnView
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import requires, signed_in
from bastion.access.models import Action
from bastion.accounts.mfa import reset_mfa
from bastion.web.errors import error_response


@require_safe
@never_cache
@signed_in
def totp_qr(request: HttpRequest) -> HttpResponse:
    """The QR code of the secret being enrolled, as an SVG image.

    allauth puts it in the page as a data: URI, which the strict CSP (img-src 'self') refuses; served
    from here it is an ordinary same-origin image. Read-only: the secret was drawn by the enrolment
    page and lives in the session until enrolment ends.
    """
    secret = request.session.get(SECRET_SESSION_KEY)
    if not secret:
        raise Http404("No enrolment in progress.")
    adapter = get_adapter()
    svg = adapter.build_totp_svg(adapter.build_totp_url(request.user, secret))
    return HttpResponse(svg, content_type="image/svg+xml")


@require_POST
@requires(Action.MANAGE)
def user_mfa_reset(request: HttpRequest, pk: int) -> HttpResponse:
    """Permission: manage, and a recent re-authentication: a stolen administrator session alone must not
    strip other users' second factors. Not for oneself: the own two-factor page keeps a required one."""
    subject = get_object_or_404(get_user_model(), pk=pk)
    if subject.pk == request.user.pk:
        return error_response(request, 400, "Change your own second factors on your Two-factor authentication "
                                            "page, not here.")
    if not did_recently_reauthenticate(request):
        messages.info(request, "Confirm it is you, then reset the second factors again.")
        detail = reverse("accounts:user_detail", kwargs={"pk": subject.pk})
        return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': detail})}")
    removed = reset_mfa(request, subject)
    messages.success(request, f"Two-factor authentication of {subject.get_username()} was reset "
                              f"({removed} authenticator(s) removed) and their sessions ended.")
    return redirect("accounts:user_detail", pk=subject.pk)


class KeepRequiredKeyRemoveWebAuthnView(RemoveWebAuthnView):
    """allauth's removal of a security key, refusing the last second factor a role requires.

    allauth asks the adapter (can_delete_authenticator) before removing an authenticator app, not before
    removing a key; this asks it for keys too. Re-authentication stays allauth's (on dispatch).
    """

    def form_valid(self, form: Any) -> HttpResponse:
        if not get_adapter().can_delete_authenticator(self.get_object()):
            messages.error(request=self.request, message="This is your last second factor and your role requires "
                                                         "one: add another before you remove it.")
            return redirect("mfa_list_webauthn")
        return super().form_valid(form)


remove_webauthn = KeepRequiredKeyRemoveWebAuthnView.as_view()
