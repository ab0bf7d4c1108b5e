"""The audit hash chain: canonical form of an event, its HMAC, and verification (T34)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq", "created_at", "actor_id", "actor", "ip", "user_agent", "auth_method", "action",
    "target", "outcome", "request_id", "details", "before", "after", "prev_hash",
)


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTC timestamps."""
    data = {name: fields[name] for name in HASHED_FIELDS}
    data["created_at"] = fields["created_at"].astimezone(UTC).isoformat()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(fields: dict[str, Any], key: str | None = None) -> str:
    secret = (key or settings.AUDIT_HMAC_KEY).encode("utf-8")
    return hmac.new(secret, canonical(fields), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str = ""


def _fields(event: Any) -> dict[str, Any]:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def verify_chain(events: Iterable[Any], key: str | None = None) -> ChainReport:
    """Walk events in ``seq`` order; report the first one that does not fit."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for event in events:
        if event.seq != expected_seq:
            problem = (f"event #{expected_seq} is missing (next found is #{event.seq})"
                       if event.seq > expected_seq else f"event #{event.seq} is out of sequence")
            return ChainReport(False, checked, expected_seq, problem)
        if event.prev_hash != expected_prev:
            return ChainReport(False, checked, event.seq,
                               f"event #{event.seq} does not follow event #{event.seq - 1}")
        if not hmac.compare_digest(event.hash, event_hash(_fields(event), key)):
            return ChainReport(False, checked, event.seq,
                               f"event #{event.seq} was changed after it was written")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    return ChainReport(True, checked)
