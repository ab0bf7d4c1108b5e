"""Writing audit events: the only code path that creates them, and none changes them."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from bastion.audit.chain import GENESIS, event_hash
from bastion.audit.models import AuditEvent, Outcome
from bastion.logs import get_logger
from bastion.web.net import client_ip, user_agent

log = get_logger("bastion.audit")

# Any constant works; it only has to be the same in every process.
_PG_CHAIN_LOCK = 0x0B457104


def _plain(value: Any) -> Any:
    """JSON-safe copy, so what is hashed is exactly what the database returns later.

    NUL characters (which PostgreSQL cannot store in text or JSON) become U+FFFD,
    so a hostile value cannot make the event itself fail to be written.
    """
    if value is None:
        return None
    text = json.dumps(value, cls=DjangoJSONEncoder).replace("\\u0000", "\\ufffd")
    return json.loads(text)


def _lock_chain() -> None:
    # SQLite: the connection opens transactions IMMEDIATE, which already
    # serialises writers. PostgreSQL: one advisory lock for the chain head.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])


def _auth_method(request: HttpRequest | None, known: bool) -> str:
    if request is None:
        return "cli"
    return "session" if known else ""


def _who(request: HttpRequest | None, actor: Any) -> dict[str, Any]:
    user = actor if actor is not None else getattr(request, "user", None)
    known = user is not None and getattr(user, "is_authenticated", False)
    return {
        "actor_id": user.pk if known else None,
        "actor": user.get_username() if known else "",
        "ip": client_ip(request) if request is not None else "",
        "user_agent": user_agent(request) if request is not None else "",
        "auth_method": _auth_method(request, known),
        "request_id": getattr(request, "request_id", "") if request is not None else "",
    }


def record(
    action: str,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
    target: str = "",
    outcome: str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
    before: Any = None,
    after: Any = None,
    auth_method: str | None = None,
) -> AuditEvent:
    """Append one event to the chain and emit it on the ``bastion.audit`` log.

    ``auth_method`` defaults to how the request was authenticated ("session",
    "cli" outside a request); sign-in events pass the factor used ("password").
    """
    fields: dict[str, Any] = {
        **_who(request, actor),
        "created_at": timezone.now(),
        "action": action,
        "target": str(target)[:500].replace("\x00", "\ufffd"),
        "outcome": str(outcome),
        "details": _plain(details or {}),
        "before": _plain(before),
        "after": _plain(after),
    }
    if auth_method is not None:
        fields["auth_method"] = auth_method
    with transaction.atomic():
        _lock_chain()
        last = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        fields["seq"] = last["seq"] + 1 if last else 1
        fields["prev_hash"] = last["hash"] if last else GENESIS
        fields["hash"] = event_hash(fields)
        event = AuditEvent.objects.create(**fields)
    log.info("audit", **{k: v for k, v in fields.items() if k not in {"created_at", "prev_hash"}},
             created_at=fields["created_at"].isoformat())
    return event
