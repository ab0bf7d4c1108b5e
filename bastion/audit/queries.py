"""Reading the audit log: filtered, keyset-paginated on ``seq`` (fast at any depth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bastion.audit.models import AuditEvent

PAGE_SIZE = 50


@dataclass
class AuditPage:
    events: list[AuditEvent]
    older_query: str = ""
    newer_query: str = ""
    filters: dict[str, Any] = field(default_factory=dict)


def _filtered(filters: dict[str, Any]):
    events = AuditEvent.objects.all()
    if filters.get("actor"):
        events = events.filter(actor=filters["actor"])
    if filters.get("action"):
        events = events.filter(action__startswith=filters["action"])
    if filters.get("outcome"):
        events = events.filter(outcome=filters["outcome"])
    if filters.get("since"):
        events = events.filter(created_at__gte=filters["since"])
    if filters.get("until"):
        events = events.filter(created_at__lte=filters["until"])
    return events


def _query(filters: dict[str, Any], **cursor: int) -> str:
    kept = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in filters.items() if v not in (None, "") and k not in {"before", "after"}}
    return "?" + urlencode({**kept, **cursor})


def audit_page(filters: dict[str, Any]) -> AuditPage:
    """Newest first; ``before``/``after`` are seq cursors from the previous page."""
    events = _filtered(filters)
    if filters.get("after") is not None:
        rows = list(events.filter(seq__gt=filters["after"]).order_by("seq")[: PAGE_SIZE + 1])
        has_newer = len(rows) > PAGE_SIZE
        rows = list(reversed(rows[:PAGE_SIZE]))
        has_older = events.filter(seq__lt=rows[-1].seq).exists() if rows else False
    else:
        if filters.get("before"):
            events = events.filter(seq__lt=filters["before"])
        rows = list(events.order_by("-seq")[: PAGE_SIZE + 1])
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = bool(filters.get("before")) and bool(rows)
    page = AuditPage(rows, filters=filters)
    if rows and has_older:
        page.older_query = _query(filters, before=rows[-1].seq)
    if rows and has_newer:
        page.newer_query = _query(filters, after=rows[0].seq)
    return page
