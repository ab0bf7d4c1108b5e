"""What happened to a table's rows: their audit events, and the values in them as the CURRENT user may see them.

Row events (bastion.explorer.changes) carry ``details`` = {connection_id, schema,
table, key_columns, key (or keys, for bulk events), ...}; they are found with
JSONField key lookups, which SQLite and PostgreSQL metadata databases both answer.
Before/after values are the whole row, hidden and masked columns included: they
are masked here per the viewer's grants of today, and hidden ones left out (T31).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

from django.db import connection as db_connection
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT

from bastion.access.masking import mask_value
from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView
from bastion.audit.models import AuditEvent
from bastion.explorer import tokens
from bastion.explorer.changes import BULK_DELETE, REVERT, ROW_EVENTS, from_audit, is_omitted
from bastion.explorer.schema import TableInfo
from bastion.explorer.values import Cell, cell

ROW_ACTIONS = (*ROW_EVENTS, REVERT)
# Bulk events list their keys in an array that the lookups cannot search portably: at most this
# many recent bulk events of the table are looked through in Python for one row's history.
BULK_SCAN_LIMIT = 500


def _table_events(info: TableInfo) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(action__in=ROW_ACTIONS, details__connection_id=info.connection.pk,
                                       details__schema=info.schema)
    if db_connection.vendor == "postgresql":
        # The expression of the index audit_event_details_table: PostgreSQL finds the table's events
        # through it instead of reading every row event (SQLite cannot match Django's KT to it).
        return events.alias(changed_table=KT("details__table")).filter(changed_table=info.name)
    return events.filter(details__table=info.name)


def table_history(info: TableInfo, limit: int = 100) -> list[AuditEvent]:
    """The table's most recent row events, newest first."""
    return list(_table_events(info).order_by("-seq")[:limit])


def row_history(info: TableInfo, key_values: Sequence[Any], limit: int = 50) -> list[AuditEvent]:
    """Row events about the row whose key (info.key) is ``key_values``, newest first."""
    key = [tokens.tag_value(v) for v in key_values]
    events = _table_events(info).filter(details__key_columns=list(info.key))
    direct = list(events.filter(Q(details__key=key) | Q(details__previous_key=key)).order_by("-seq")[:limit])
    bulk_events = events.filter(Q(action=BULK_DELETE) | Q(action=REVERT, details__reverted_action=BULK_DELETE))
    # Only the details of the recent bulk events are read to find the row; whole events only for matches
    # (a bulk event's before values can hold a thousand rows).
    matching = [event.pk for event in bulk_events.only("pk", "details").order_by("-seq")[:BULK_SCAN_LIMIT]
                if key in (event.details.get("keys") or [])]
    bulk = list(AuditEvent.objects.filter(pk__in=matching)) if matching else []
    merged = {event.pk: event for event in [*direct, *bulk]}
    return sorted(merged.values(), key=lambda event: event.seq, reverse=True)[:limit]


@dataclass(frozen=True)
class ValueChange:
    """One column of one row in an event: before and after (None: that side does not exist)."""

    column: str
    before: Cell | None
    after: Cell | None
    changed: bool


@dataclass(frozen=True)
class EventRow:
    """One row an event touched, column by column (only the columns the viewer may see)."""

    values: list[ValueChange]

    @property
    def changed(self) -> list[ValueChange]:
        return [v for v in self.values if v.changed]


def _shown(stored: Any, view: ColumnView) -> Cell:
    if is_omitted(stored):
        if view.mode == ColumnMode.MASKED:
            return Cell(text=mask_value(b"", view.mask_rule) or "", masked=True)
        return Cell(binary_size=int(stored.get("size") or 0))
    try:
        value = from_audit(stored)
    except (ValueError, TypeError, KeyError):
        value = str(stored)  # not written by changes.audit_value: shown as its text
    return cell(value, view)


def _as_rows(side: Any) -> list[Mapping[str, Any] | None]:
    if isinstance(side, list):
        return [row if isinstance(row, dict) else None for row in side]
    return [side if isinstance(side, dict) else None]


def _event_row(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
               views: Mapping[str, ColumnView]) -> EventRow:
    values = []
    for name, view in views.items():  # the table's column order; columns gone since are left out
        if view.mode == ColumnMode.HIDDEN:
            continue
        in_before = before is not None and name in before
        in_after = after is not None and name in after
        if not in_before and not in_after:
            continue
        old = before[name] if in_before else None  # type: ignore[index]
        new = after[name] if in_after else None  # type: ignore[index]
        values.append(ValueChange(name, _shown(old, view) if in_before else None,
                                  _shown(new, view) if in_after else None,
                                  changed=in_before != in_after or old != new))
    return EventRow(values)


def event_rows(event: AuditEvent, views: Mapping[str, ColumnView]) -> list[EventRow]:
    """The rows an event changed, as Cells masked per ``views`` (the current user's view of each column).

    One EventRow for insert/update/delete (and their reverts), one per row for bulk deletes.
    """
    befores = _as_rows(event.before) if event.before is not None else []
    afters = _as_rows(event.after) if event.after is not None else []
    rows: Iterable[tuple[Any, Any]] = zip_longest(befores, afters)
    return [_event_row(before, after, views) for before, after in rows if before is not None or after is not None]


def reverted_seqs(events: Iterable[AuditEvent]) -> set[int]:
    """The seq of every event that one of ``events`` (newest first, so reverts come before) reverted."""
    return {int(e.details["reverted_seq"]) for e in events
            if e.action == REVERT and isinstance(e.details, dict) and e.details.get("reverted_seq") is not None}
