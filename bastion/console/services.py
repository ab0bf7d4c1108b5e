"""What the console remembers and records: drafts, history, saved queries, and one audit event per action."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections.models import Connection
from bastion.console.models import Draft, HistoryEntry, SavedQuery
from bastion.console.runner import Plan, Run

MAX_AUDITED_TEXT = 10_000  # characters of a statement kept in its audit event


def draft_text(user: Any, connection: Connection) -> str:
    found = Draft.objects.filter(user=user, connection=connection).values_list("text", flat=True).first()
    return found or ""


def store_draft(user: Any, connection: Connection, text: str) -> bool:
    """Keep the editor's text (a run does this as part of its own audited action); True when it changed."""
    draft, created = Draft.objects.get_or_create(user=user, connection=connection, defaults={"text": text})
    if not created and draft.text == text:
        return False
    if not created:
        draft.text = text
        draft.save(update_fields=["text", "updated_at"])
    return True


def save_draft(request: HttpRequest, connection: Connection, text: str) -> bool:
    """Keep the editor's text on its own; audited when it changed (its length only: the text is the user's)."""
    if not store_draft(request.user, connection, text):
        return False
    record("console.draft_saved", request=request, target=connection.name,
           details={"connection_id": connection.pk, "characters": len(text)})
    return True


def _statement_details(plan: Plan, run: Run | None) -> list[dict[str, Any]]:
    results = {r.statement.index: r for r in run.results} if run else {}
    details = []
    for statement in plan.statements:
        result = results.get(statement.index)
        details.append({
            "index": statement.index,
            "text": statement.text[:MAX_AUDITED_TEXT],
            "kind": str(statement.kind),
            "verified": statement.verified,
            "tables": sorted({str(t) for t in (*statement.reads, *(w.table for w in statement.writes),
                                                *(d.table for d in statement.ddl))}),
            "rows_returned": len(result.rows) if result and result.returns_rows else None,
            "rows_affected": result.affected if result else None,
        })
    return details


def _outcome(plan: Plan, run: Run | None) -> tuple[str, str]:
    if plan.problem is not None:
        return Outcome.DENIED, plan.problem.message
    if run is not None and run.problem is not None:
        return Outcome.FAILURE, run.problem.message
    return Outcome.SUCCESS, ""


def audit_run(request: HttpRequest, action: str, plan: Plan, run: Run | None, *, outcome: str | None = None,
              message: str | None = None) -> None:
    """One event per console action: statements, their kind and tables, rows, outcome and duration (T33).

    ``outcome`` and ``message`` override what the plan and run say (a download refused after planning)."""
    found_outcome, found_message = _outcome(plan, run)
    outcome = outcome or found_outcome
    message = found_message if message is None else message
    record(action, request=request, target=plan.connection.name, outcome=outcome, details={
        "connection_id": plan.connection.pk,
        "statements": _statement_details(plan, run),
        "read_only": plan.read_only,
        "committed": bool(run and run.committed),
        "elapsed_ms": round(run.elapsed_ms, 1) if run else 0,
        "message": message,
    })


def remember_run(user: Any, plan: Plan, run: Run | None) -> None:
    """Add the script to the user's history for this connection, keeping the newest CONSOLE_HISTORY."""
    outcome, _ = _outcome(plan, run)
    rows = sum(len(r.rows) if r.returns_rows else (r.affected or 0) for r in run.results) if run else None
    with transaction.atomic():
        HistoryEntry.objects.create(user=user, connection=plan.connection, text=plan.script, outcome=outcome,
                                    rows=rows, elapsed_ms=run.elapsed_ms if run else 0)
        old = HistoryEntry.objects.filter(user=user, connection=plan.connection).values_list("pk", flat=True)[
            settings.CONSOLE_HISTORY:]
        HistoryEntry.objects.filter(pk__in=list(old)).delete()


def history(user: Any, connection: Connection) -> QuerySet[HistoryEntry]:
    return HistoryEntry.objects.filter(user=user, connection=connection)


def visible_saved_queries(user: Any, connection: Connection) -> QuerySet[SavedQuery]:
    """The user's own saved queries and those shared with one of their roles."""
    return SavedQuery.objects.filter(connection=connection).filter(
        Q(owner=user) | Q(shared_with__in=user.groups.all())).select_related("owner", "shared_with").distinct()


def save_query(request: HttpRequest, connection: Connection, name: str, text: str,
               shared_with: Group | None) -> SavedQuery:
    """Create or replace the user's saved query called ``name``."""
    saved, created = SavedQuery.objects.update_or_create(
        owner=request.user, connection=connection, name=name,
        defaults={"text": text, "shared_with": shared_with})
    record("console.query_saved", request=request, target=connection.name, details={
        "connection_id": connection.pk, "name": name, "replaced": not created,
        "shared_with": shared_with.name if shared_with else None, "text": text[:MAX_AUDITED_TEXT]})
    return saved


def delete_saved_query(request: HttpRequest, saved: SavedQuery) -> None:
    record("console.query_deleted", request=request, target=saved.connection.name,
           details={"connection_id": saved.connection_id, "name": saved.name})
    saved.delete()
