"""Every refused request is an audit event: denied attempts matter as much as successes."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from bastion.audit.models import Outcome
from bastion.audit.services import record

DENIED_STATUSES = {401, 403, 429}


def mark_audited(response: HttpResponse) -> HttpResponse:
    """For a view that already wrote a more specific event for its refusal."""
    response.bastion_audited = True
    return response


class DeniedRequestAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code in DENIED_STATUSES and not getattr(response, "bastion_audited", False):
            record(
                "request.denied",
                request=request,
                target=request.path[:500],
                outcome=Outcome.DENIED,
                details={"status": response.status_code, "method": request.method},
            )
        return response
