from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from bastion.audit.forms import AuditFilterForm
from bastion.audit.queries import audit_page


@require_safe
@login_required
@permission_required("audit.view_auditevent", raise_exception=True)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = audit_page(filters)
    return render(request, "audit/log.html", {"form": form, "page": page})
