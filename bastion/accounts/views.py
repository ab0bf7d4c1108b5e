"""The login view: allauth's, behind Bastion's clipping levels (T14)."""

from __future__ import annotations

from typing import Any

from allauth.account.views import LoginView
from django.http import HttpRequest, HttpResponse

from bastion.accounts import throttle
from bastion.audit.middleware import mark_audited
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.web.errors import error_response
from bastion.web.net import client_ip


class ClippedLoginView(LoginView):
    """Refuses (429) attempts from an address or account/address over its clipping level.

    The refusal happens before the password is even looked at, so the right
    password does not help an attacker who has been clipped.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("login", ""))[:150]
        verdict = throttle.check(client_ip(request), username)
        if verdict.refused:
            record("login.refused", request=request, outcome=Outcome.DENIED, target=username,
                   details={"username": username, "reason": verdict.reason})
            response = error_response(request, 429)
            response["Retry-After"] = str(verdict.retry_after)
            return mark_audited(response)
        return super().post(request, *args, **kwargs)


login = ClippedLoginView.as_view()
