"""What binds a dropped table's snapshot to its audit event, checked by a restore and by `audit verify` (T34).

A drop event's ``details["snapshot"]`` carries ``definition_sha256`` (and, when the rows were kept,
their ``sha256``, count and size); the snapshot row must hash to exactly that. Since the event itself is
covered by the HMAC chain, a snapshot edited, deleted or added behind Bastion's back shows up here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from bastion.audit.chain import ChainReport
from bastion.audit.models import AuditEvent, TableSnapshot


def definition_digest(dialect: str, create: str, indexes: Iterable[str], finish: Iterable[str],
                      columns: Iterable[dict[str, Any]]) -> str:
    """sha256 of a definition's canonical JSON: what the audit event carries and a restore checks."""
    data = {"dialect": dialect, "create": create, "indexes": list(indexes), "finish": list(finish),
            "columns": list(columns)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def snapshot_intact(event: AuditEvent, snapshot: TableSnapshot) -> bool:
    """The snapshot's statements and rows hash to what the (intact) drop event recorded."""
    said = event.details.get("snapshot") or {}
    if not said.get("definition_kept"):
        return False  # the event says nothing was kept: any snapshot of it was added later
    digest = definition_digest(snapshot.dialect, snapshot.create_sql, snapshot.index_sql, snapshot.finish_sql,
                               snapshot.columns)
    if not hmac.compare_digest(digest, str(said.get("definition_sha256", ""))) or \
            not hmac.compare_digest(digest, snapshot.definition_sha256):
        return False
    if bool(said.get("rows_kept")) != snapshot.rows_kept:
        return False
    if not snapshot.rows_kept:
        return True
    data_hash = hashlib.sha256(bytes(snapshot.data or b"")).hexdigest()
    return (hmac.compare_digest(data_hash, str(said.get("sha256", ""))) and data_hash == snapshot.sha256
            and said.get("rows") == snapshot.row_count and said.get("json_bytes") == snapshot.json_bytes)


def verify_snapshots() -> ChainReport:
    """Every event that says a definition was kept has its snapshot, intact; no other event has one.

    Run after ``verify_chain`` found the events intact (their details are what the snapshots are checked
    against). Snapshots are read one at a time: each may hold megabytes of rows."""
    claimed = AuditEvent.objects.filter(details__snapshot__definition_kept=True).order_by("seq")
    kept = dict(TableSnapshot.objects.values_list("event_id", "pk"))
    checked = 0
    for event_pk, seq in claimed.values_list("pk", "seq").iterator(chunk_size=2000):
        snapshot_pk = kept.pop(event_pk, None)
        if snapshot_pk is None:
            return ChainReport(False, checked, seq, f"the snapshot of the table dropped in event #{seq} is missing")
        snapshot = TableSnapshot.objects.select_related("event").get(pk=snapshot_pk)
        if not snapshot_intact(snapshot.event, snapshot):
            return ChainReport(False, checked, seq, f"the snapshot of the table dropped in event #{seq} was "
                                                    "changed after it was written")
        checked += 1
    if kept:  # snapshots of events that say none was kept
        seq = min(AuditEvent.objects.filter(pk__in=kept).values_list("seq", flat=True), default=None)
        return ChainReport(False, checked, seq, f"event #{seq} has a table snapshot it did not record")
    return ChainReport(True, checked)
