from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.audit.forms import AuditFilterForm
from bastion.audit.queries import audit_page


@require_safe
@requires(Action.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = audit_page(filters)
    return render(request, "audit/log.html", {"form": form, "page": page})
