"""The approvals page: requests waiting for a second person, and the user's own (two-person rule, T37).

Permission (T20): signed in. Each request is shown only to its requester and to the users who may
decide it (bastion.schema_editor.approvals.may_decide), and every decision is checked again, per
request, by the service, which audits it (refusals too: those answers are marked audited).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from bastion.access.decorators import signed_in
from bastion.audit.middleware import mark_audited
from bastion.schema_editor import approvals
from bastion.schema_editor.models import ApprovalRequest
from bastion.web.errors import error_response

DECISIONS = ("approve", "reject", "cancel")


@require_safe
@signed_in
def approval_list(request: HttpRequest) -> HttpResponse:
    """Permission: signed in; lists only the requests this user may decide, and their own."""
    return render(request, "schema_editor/approvals.html", {
        "decidable": approvals.decidable(request.user),
        "own": approvals.own(request.user),
        "approval_hours": round(settings.SCHEMA_APPROVAL_SECONDS / 3600, 1),
    })


@require_POST
@signed_in
def approval_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Permission: signed in, then per request: approve/reject by another user holding manage or the grant
    (approving after a recent re-authentication), cancel by the requester."""
    from allauth.account.internal.flows.reauthentication import did_recently_reauthenticate

    approval = get_object_or_404(ApprovalRequest.objects.select_related("connection", "requester"), pk=pk)
    decision = request.POST.get("decision", "")
    if decision not in DECISIONS:
        return error_response(request, 400, "Choose approve, reject or cancel.")
    back = reverse("approvals:list")
    try:
        if decision == "approve":
            done = approvals.approve(request.user, request, approval,
                                     reauthenticated=did_recently_reauthenticate(request))
        elif decision == "reject":
            approvals.reject(request.user, request, approval, request.POST.get("reason", ""))
            done = f"Request #{approval.pk} rejected: nothing was changed."
        else:
            approvals.cancel(request.user, request, approval)
            done = f"Request #{approval.pk} cancelled."
    except approvals.Denied as exc:
        return mark_audited(error_response(request, 403, str(exc)))
    except approvals.NeedsReauthentication:
        return redirect(f"{reverse('account_reauthenticate')}?{urlencode({'next': back})}")
    except approvals.Refused as exc:
        messages.error(request, str(exc))
        return redirect(back)
    messages.success(request, done)
    return redirect(back)
