"""Masking a column value before it leaves the server (T31).

Every masked output starts with a fixed-length run of asterisks, so the
length of the clear value is not revealed. Values too short to keep a secret
part are masked completely.
"""

from __future__ import annotations

from typing import Any

from bastion.access.models import MaskRule

FULL_MASK = "****"
# last4 reveals four characters only of values at least this long (at most half of it).
LAST4_MIN_LENGTH = 8


def mask_value(value: Any, rule: MaskRule | str) -> str | None:
    """The masked form of ``value`` under ``rule``; None (SQL NULL) stays None."""
    rule = MaskRule(rule)
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return FULL_MASK  # binary data has no meaningful "last characters"
    text = value if isinstance(value, str) else str(value)
    if rule == MaskRule.LAST4:
        return FULL_MASK + text[-4:] if len(text) >= LAST4_MIN_LENGTH else FULL_MASK
    if rule == MaskRule.EMAIL_DOMAIN:
        local, at, domain = text.rpartition("@")
        return f"***@{domain}" if at and local and domain else FULL_MASK
    return FULL_MASK
