"""The two-person rule: schema changes that wait for a second person's approval (issue 5; T37, T20, T33).

An admin ticks, per role, which operations (DROP, EMPTY, DROP_COLUMN) its members may not run
alone (RoleOptions.two_person_*); a user needs approval when ANY of their roles asks for it
(``needed``). The view that would run the change calls ``submit`` instead, with the exact
statements it showed: the request waits in the approvals list until it is approved, rejected,
cancelled by its requester, or expires (settings.SCHEMA_APPROVAL_SECONDS after it was made; a
pending request past that time counts as expired without anything being written, and the first
POST about it marks it expired).

Who may decide: any active user but the requester who holds ``manage``, or the grant the change
needs on that table (``drop`` for drop and empty, ``alter`` for dropping a column). Approving
checks again, at the POST, in this order:
1. the approver is not the requester (self-approval is refused, audited as denied) and may decide;
2. the request is pending and not expired;
3. the approver re-authenticated in the last few minutes (else nothing happens: re-authenticate);
4. the requester is active and still holds the grant, the table is still there and its
   definition is the one the requester saw (``fingerprint``; else the request is closed as failed);
then the request is claimed (pending -> approved, a compare-and-set, so two approvers can never
both run it) and its executor runs; the request ends executed or failed, with the message.

Audit. Each decision POST writes exactly one decision event: schema.approval_approved, _rejected,
_cancelled or _expired, with approval_id, requested_by and (approvals) approved_by. A refused
attempt (self-approval, no right to decide, no longer pending) has outcome denied; an approval
stopped by check 4 or an unreachable database has outcome failure. An approval that passes all
checks is followed, in the same request (same request_id), by the change's own event written by
its executor: drop.run's schema.table_dropped / schema.table_emptied (success or failure).
Why two events, not one: the decision is recorded in the same transaction as the claim, BEFORE
the DDL runs, so the log never holds a change without the approval that allowed it, even when the
server dies mid-way (the request then stays "approved, running"); and the DDL event keeps exactly
the shape every drop has (definition before, statement), which audit views and restore read.

Executors: ``EXECUTORS[operation](approval, approver, request) -> message`` runs the change and
audits it, success or failure; on failure it raises ExecutionFailed(message) after its event is
written. The drop executor runs the change under the REQUESTER's grants (drop.run checks again
that they may drop that table; the approver may hold manage only), so the DDL event names the
requester as actor, with the approving request's IP, user agent and request id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from bastion.access.models import Action, ColumnMode, RoleOptions, TwoPersonOperation
from bastion.access.policy import Resource, check, column_modes
from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.connections import reflection
from bastion.connections.counts import RowCount
from bastion.connections.engines import get_engine
from bastion.connections.errors import safe_message
from bastion.explorer.schema import TableInfo, TableNotFound, resolve_table
from bastion.explorer.views import UNREACHABLE
from bastion.schema_editor import drop
from bastion.schema_editor.models import ApprovalRequest, ApprovalStatus

DROP = TwoPersonOperation.DROP.value
EMPTY = TwoPersonOperation.EMPTY.value
DROP_COLUMN = TwoPersonOperation.DROP_COLUMN.value
OPERATIONS = (DROP, EMPTY, DROP_COLUMN)
GRANT_FOR = {DROP: Action.DROP, EMPTY: Action.DROP, DROP_COLUMN: Action.ALTER}

REQUESTED = "schema.approval_requested"
APPROVED = "schema.approval_approved"
REJECTED = "schema.approval_rejected"
CANCELLED = "schema.approval_cancelled"
EXPIRED = "schema.approval_expired"
LIST_LIMIT = 200  # requests listed per section (and counted in the navigation)
REASON_LENGTH = 500


class Refused(Exception):
    """Nothing was done; ``str()`` is a plain message safe to show. Audited where a decision was asked for."""


class Denied(Refused):
    """The user may not do this to this request (403). Already audited as denied."""


class NeedsReauthentication(Exception):
    """The approver has not re-authenticated recently: nothing was done or audited."""


class ExecutionFailed(Exception):
    """An executor could not make the change; its failure is audited; ``str()`` is safe to show."""


Executor = Callable[[ApprovalRequest, Any, HttpRequest | None], str]
EXECUTORS: dict[str, Executor] = {}


# --- who needs approval, who may decide ------------------------------------------------------------------
def _known(operation: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown two-person operation {operation!r}")
    return operation


def _member(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def needed_operations(user: Any) -> frozenset[str]:
    """Every operation one of ``user``'s roles makes wait for approval (one query)."""
    if not _member(user):
        return frozenset()
    fields = RoleOptions.TWO_PERSON_FIELDS
    rows = RoleOptions.objects.filter(role__user=user).values_list(*fields.values())
    return frozenset(str(op) for row in rows for op, on in zip(fields, row, strict=True) if on)


def needed(user: Any, connection: Any, operation: str) -> bool:
    """Must ``operation`` by ``user`` wait for a second person? (The rule is per role, for every connection.)"""
    return _known(operation) in needed_operations(user)


def resource(approval: ApprovalRequest) -> Resource:
    return Resource(approval.connection_id, approval.schema or None, approval.table)


def may_decide(user: Any, approval: ApprovalRequest) -> bool:
    """Anybody but the requester holding manage, or the grant the change needs on that table and, for a column
    drop, the columns its statements name in clear (the column; on SQLite, whose rebuild names every column,
    all of them): a request must not show a hidden column's name, nor let its drop be approved blind (T31)."""
    if not _member(user) or user.pk == approval.requester_id:
        return False
    if check(user, Action.MANAGE):
        return True  # manage may change any grant: nothing is hidden from it for long
    if not check(user, GRANT_FOR[approval.operation], resource(approval)):
        return False
    return approval.operation != DROP_COLUMN or _sees_named_columns(user, approval)


def _sees_named_columns(user: Any, approval: ApprovalRequest) -> bool:
    schema = approval.schema or None
    names = [approval.column]
    if approval.connection.engine == "sqlite":
        try:
            names += [c["name"] for c in reflection.columns(approval.connection, schema, approval.table)]
        except UNREACHABLE:  # an unreadable table shows nothing; approving it would fail anyway
            return False
    views = column_modes(user, approval.connection_id, schema, approval.table, names)
    return all(view.mode == ColumnMode.VISIBLE for view in views.values())


def decidable(user: Any) -> list[ApprovalRequest]:
    """Open requests ``user`` may approve or reject, soonest to expire first (one query)."""
    if not _member(user):
        return []
    rows = (ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, expires_at__gt=timezone.now())
            .exclude(requester=user).select_related("connection", "requester").order_by("expires_at"))
    return [approval for approval in rows[:LIST_LIMIT] if may_decide(user, approval)]


def own(user: Any) -> list[ApprovalRequest]:
    """``user``'s own requests, newest first."""
    if not _member(user):
        return []
    rows = ApprovalRequest.objects.filter(requester=user).select_related("connection", "decided_by")
    return list(rows[:LIST_LIMIT])


def waiting_count(user: Any) -> int:
    """How many requests wait for ``user``'s decision (the navigation's badge)."""
    return len(decidable(user))


# --- asking --------------------------------------------------------------------------------------------
def fingerprint(info: TableInfo) -> str:
    """A digest of the table's definition (columns, keys, indexes; a view's SQL), as drop.definition gives it,
    and of the database the connection points at: a connection moved to another server or database since the
    request must not let the approval run there."""
    connection = info.connection
    where = {field: getattr(connection, field) for field in ("engine", "host", "port", "database", "sqlite_path")}
    canonical = json.dumps({"table": drop.definition(info), "database": where}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def when(moment: Any) -> str:
    """A moment as messages show it."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def submit(user: Any, request: HttpRequest | None, info: TableInfo, operation: str, statements: list[str],
           column: str | None = None) -> ApprovalRequest:
    """Ask for a second person's approval of ``operation`` on ``info`` instead of running it.

    ``statements``: exactly what the user was shown. Raises PermissionDenied without the grant,
    Refused when the same request already waits. Audited as schema.approval_requested.
    """
    _known(operation)
    if (operation == DROP_COLUMN) != bool(column):
        raise ValueError("a column is needed for drop_column, and only for it")
    statements = [str(s) for s in statements]
    if not statements or not all(s.strip() for s in statements):
        raise ValueError("the statements shown to the user are needed")
    if not check(user, GRANT_FOR[operation], Resource(info.connection.pk, info.schema, info.name)):
        raise PermissionDenied
    now = timezone.now()
    same = ApprovalRequest.objects.filter(requester=user, connection=info.connection, schema=info.schema or "",
                                          table=info.name, operation=operation, column=column or "",
                                          status=ApprovalStatus.PENDING, expires_at__gt=now).first()
    if same is not None:
        raise Refused(f"You already asked for this; that request waits for another person's approval until "
                      f"{when(same.expires_at)}. Nothing was changed.")
    approval = ApprovalRequest(requester=user, connection=info.connection, schema=info.schema or "",
                               table=info.name, operation=operation, column=column or "", statements=statements,
                               fingerprint=fingerprint(info), created_at=now,
                               expires_at=now + timedelta(seconds=settings.SCHEMA_APPROVAL_SECONDS))
    with transaction.atomic():
        approval.save()
        _audit(REQUESTED, request, user, approval, expires_at=approval.expires_at.isoformat(),
               fingerprint=approval.fingerprint)
    return approval


# --- deciding ------------------------------------------------------------------------------------------
def _target(approval: ApprovalRequest) -> str:
    return f"{approval.connection.name}: {approval.table_label}"


def _audit(event: str, request: HttpRequest | None, user: Any, approval: ApprovalRequest,
           outcome: str = Outcome.SUCCESS, **extra: Any) -> None:
    details = {"approval_id": approval.pk, "connection_id": approval.connection_id,
               "schema": approval.schema or None, "table": approval.table, "column": approval.column or None,
               "operation": approval.operation, "statements": approval.statements,
               "requested_by": approval.requester.get_username(), "requested_by_id": approval.requester_id,
               **extra}
    record(event, request=request, actor=user, target=_target(approval), outcome=outcome, details=details)


def _deny(event: str, request: HttpRequest | None, user: Any, approval: ApprovalRequest, why: str,
          cls: type[Refused] = Denied) -> NoReturn:
    _audit(event, request, user, approval, Outcome.DENIED, reason=why)
    raise cls(why)


def _guard_decider(event: str, request: HttpRequest | None, user: Any, approval: ApprovalRequest) -> None:
    if _member(user) and user.pk == approval.requester_id:
        _deny(event, request, user, approval, "You cannot decide your own request: another person has to. "
                                              "You may cancel it.")
    if not may_decide(user, approval):
        _deny(event, request, user, approval, "You may not decide this request: it needs the manage permission "
                                              "or the same grant on that table.")


def _refuse_unless_open(event: str, request: HttpRequest | None, user: Any, approval: ApprovalRequest) -> None:
    """Refused unless the request is pending and in time; one past its time is marked expired (audited once)."""
    now = timezone.now()
    if approval.is_expired(now):
        with transaction.atomic():
            marked = ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
                status=ApprovalStatus.EXPIRED, message=f"Nobody approved it by {when(approval.expires_at)}.")
            if marked:
                _audit(EXPIRED, request, user, approval, expires_at=approval.expires_at.isoformat(),
                       attempted=event)
        if marked:
            raise Refused(f"This request expired at {when(approval.expires_at)} without approval, so nothing "
                          "was changed. Ask again if it is still needed.")
        approval.refresh_from_db()
    if approval.status != ApprovalStatus.PENDING:
        label = ApprovalStatus(approval.status).label.lower()
        _deny(event, request, user, approval, f"This request no longer waits for a decision ({label}), so "
                                              "nothing was done.", Refused)


def _close(approval: ApprovalRequest, status: str, message: str, user: Any = None, *,
           from_status: str = ApprovalStatus.PENDING) -> bool:
    changes: dict[str, Any] = {"status": status, "message": message[:2000]}
    if user is not None:
        changes.update(decided_by=user, decided_at=timezone.now())
    done = ApprovalRequest.objects.filter(pk=approval.pk, status=from_status).update(**changes)
    approval.refresh_from_db()
    return bool(done)


def table_info(approval: ApprovalRequest) -> TableInfo:
    """The table the request is about, as reflected now (TableNotFound when it is gone)."""
    return resolve_table(approval.connection, approval.schema or None, approval.table)


def _stale(approval: ApprovalRequest) -> str | None:
    """Why the request can no longer run as it was asked; None when it still can."""
    requester = approval.requester
    if not check(requester, GRANT_FOR[approval.operation], resource(approval)):
        return (f"{requester.get_username()} no longer holds the grant this change needs (or their account is "
                "deactivated), so it was not run.")
    reflection.invalidate(approval.connection)  # compare with the table as it is, not as it was cached
    try:
        info = table_info(approval)
    except TableNotFound:
        return "The table is no longer there, so nothing was run."
    if fingerprint(info) != approval.fingerprint:
        return ("The table changed since the request (its columns, keys or indexes are not what the requester "
                "saw), so it was not run. The requester can look again and ask again.")
    return None


def approve(user: Any, request: HttpRequest | None, approval: ApprovalRequest, *, reauthenticated: bool) -> str:
    """Approve ``approval`` and run it; the executor's message. See the module docstring for the checks.

    Raises Denied, Refused (nothing ran; an unusable request is closed as failed),
    NeedsReauthentication (nothing happened) or Refused after the change failed (audited).
    """
    _guard_decider(APPROVED, request, user, approval)
    _refuse_unless_open(APPROVED, request, user, approval)
    if not reauthenticated:
        raise NeedsReauthentication
    executor = EXECUTORS.get(approval.operation)
    if executor is None:
        _deny(APPROVED, request, user, approval, "Bastion cannot run this kind of change yet; reject the request.",
              Refused)
    try:
        why = _stale(approval)
    except UNREACHABLE as exc:  # the request stays pending: try again later
        why = f"The database could not be reached ({safe_message(exc)}), so nothing was run. Try again later."
        _audit(APPROVED, request, user, approval, Outcome.FAILURE, approved_by=user.get_username(), reason=why)
        raise Refused(why) from None
    if why is not None:
        with transaction.atomic():
            if _close(approval, ApprovalStatus.FAILED, why, user):
                _audit(APPROVED, request, user, approval, Outcome.FAILURE, approved_by=user.get_username(),
                       reason=why)
                closed = True
            else:
                closed = False
        if not closed:
            _refuse_unless_open(APPROVED, request, user, approval)  # someone else was faster: say what happened
        raise Refused(why)
    with transaction.atomic():
        claimed = ApprovalRequest.objects.filter(
            pk=approval.pk, status=ApprovalStatus.PENDING, expires_at__gt=timezone.now(),
        ).update(status=ApprovalStatus.APPROVED, decided_by=user, decided_at=timezone.now())
        if claimed:
            _audit(APPROVED, request, user, approval, approved_by=user.get_username(), approved_by_id=user.pk)
    approval.refresh_from_db()
    if not claimed:
        _refuse_unless_open(APPROVED, request, user, approval)  # someone else was faster: say what happened
        raise Refused("This request was decided in the meantime, so nothing was done.")
    try:
        message = executor(approval, user, request)
    except ExecutionFailed as exc:
        _close(approval, ApprovalStatus.FAILED, str(exc), from_status=ApprovalStatus.APPROVED)
        raise Refused(str(exc)) from None
    except Exception:
        _close(approval, ApprovalStatus.FAILED, "An unexpected error stopped it; the server log has the details.",
               from_status=ApprovalStatus.APPROVED)
        raise
    _close(approval, ApprovalStatus.EXECUTED, message, from_status=ApprovalStatus.APPROVED)
    return message


def reject(user: Any, request: HttpRequest | None, approval: ApprovalRequest, reason: str = "") -> None:
    """Turn the request down; nothing runs. Audited as schema.approval_rejected."""
    _guard_decider(REJECTED, request, user, approval)
    _refuse_unless_open(REJECTED, request, user, approval)
    reason = " ".join(reason.split())[:REASON_LENGTH]
    with transaction.atomic():
        if _close(approval, ApprovalStatus.REJECTED, reason, user):
            _audit(REJECTED, request, user, approval, rejected_by=user.get_username(), rejected_by_id=user.pk,
                   reason=reason)
            return
    _refuse_unless_open(REJECTED, request, user, approval)


def cancel(user: Any, request: HttpRequest | None, approval: ApprovalRequest) -> None:
    """The requester withdraws their pending request. Audited as schema.approval_cancelled."""
    if not _member(user) or user.pk != approval.requester_id:
        _deny(CANCELLED, request, user, approval, "Only the person who asked can cancel a request.")
    _refuse_unless_open(CANCELLED, request, user, approval)
    with transaction.atomic():
        if _close(approval, ApprovalStatus.CANCELLED, "Cancelled by the requester.", user):
            _audit(CANCELLED, request, user, approval)
            return
    _refuse_unless_open(CANCELLED, request, user, approval)


def approved_details(approval: ApprovalRequest, approver: Any) -> dict[str, Any]:
    """What the change's own event says of the approval it ran under (T33)."""
    return {"approval_id": approval.pk, "requested_by": approval.requester.get_username(),
            "approved_by": approver.get_username()}


# --- running: drop and empty -----------------------------------------------------------------------------
def outcome_message(info: TableInfo, action: str, count: RowCount | None) -> str:
    """What the user reads once a drop or empty ran."""
    kind = "View" if info.is_view else "Table"
    if action == drop.DROP:
        return f"{kind} “{info.name}” dropped."
    held = f" ({count.label} row{'s' if count.value != 1 or count.more_than else ''} deleted)" if count else ""
    return f"Table “{info.name}” emptied{held}."


def _drop_failed(approval: ApprovalRequest, request: HttpRequest | None, message: str) -> NoReturn:
    """A refusal drop.run does not audit itself (it ran nothing): audited here as the change's failure."""
    event = drop.TABLE_DROPPED if approval.operation == DROP else drop.TABLE_EMPTIED
    record(event, request=request, actor=approval.requester, target=_target(approval), outcome=Outcome.FAILURE,
           details={"connection_id": approval.connection_id, "schema": approval.schema or None,
                    "table": approval.table, "approval_id": approval.pk, "error": message})
    raise ExecutionFailed(message)


def _run_drop(approval: ApprovalRequest, approver: Any, request: HttpRequest | None) -> str:
    """Drop or empty the table under the requester's grants, with exactly the statement that was approved."""
    try:
        info = table_info(approval)
        ran = drop.statement_sql(info, approval.operation, get_engine(info.connection).dialect)
        if [ran] != approval.statements:
            _drop_failed(approval, request, "The statement Bastion would run now is not the one that was approved, "
                                            "so nothing was run. The requester can ask again.")
        count = drop.run(approval.requester, request, info, approval.operation, approval.table,
                         approved=approved_details(approval, approver))
    except drop.DropFailed as exc:  # drop.run audited it
        raise ExecutionFailed(str(exc)) from None
    except drop.NotPermitted:
        _drop_failed(approval, request, f"{approval.requester.get_username()} may no longer drop this table, so "
                                        "nothing was changed.")
    except drop.Refused as exc:
        _drop_failed(approval, request, str(exc))
    except TableNotFound:
        _drop_failed(approval, request, "The table is no longer there, so nothing was run.")
    except UNREACHABLE as exc:
        _drop_failed(approval, request, f"The database could not be reached ({safe_message(exc)}); nothing was "
                                        "changed.")
    return outcome_message(info, approval.operation, count)


EXECUTORS[DROP] = _run_drop
EXECUTORS[EMPTY] = _run_drop
