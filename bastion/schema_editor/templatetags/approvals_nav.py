"""The navigation's count of approval requests waiting for the signed-in user (one query)."""

from __future__ import annotations

from typing import Any

from django import template

from bastion.schema_editor import approvals

register = template.Library()


@register.simple_tag
def approvals_waiting(user: Any) -> int:
    return approvals.waiting_count(user)
