from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from bastion.access.decorators import requires
from bastion.access.models import Action
from bastion.audit.forms import AuditFilterForm
from bastion.audit.models import TableSnapshot
from bastion.audit.queries import audit_page


@require_safe
@requires(Action.AUDIT_VIEW)
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = audit_page(filters)
    # Dropped tables with a snapshot get a Restore link; what the snapshot holds is never shown here (T31),
    # only what the event's details say of it (rows kept and their size).
    restorable = set(TableSnapshot.objects.filter(event__in=[e.pk for e in page.events])
                     .values_list("event_id", flat=True))
    for event in page.events:
        event.restorable = event.pk in restorable
    return render(request, "audit/log.html", {"form": form, "page": page})
