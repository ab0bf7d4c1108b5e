"""Dropping a column under the two-person rule: the request made from the structure page, and its executor.

The executor registers itself in approvals.EXECUTORS when this module is imported (apps.ready).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.http import HttpRequest

from bastion.audit.models import Outcome
from bastion.audit.services import record
from bastion.explorer.schema import TableInfo, TableNotFound
from bastion.schema_editor import alter, alter_checks, approvals
from bastion.schema_editor.alterations import (
    Change,
    DropColumn,
)


def needs_approval(user: Any, info: TableInfo, change: Change) -> bool:
    return isinstance(change, DropColumn) and approvals.needed(user, info.connection, approvals.DROP_COLUMN)


def ask_approval(user: Any, request: HttpRequest | None, info: TableInfo, change: Change, token: str) -> Any:
    """File a request for a second person to run ``change`` (a column drop) exactly as previewed; nothing runs.

    NotPermitted, Refused, PreviewMismatch as for alter.run; approvals.Refused when the same request already
    waits.
    """
    if not alter_checks.may_alter(user, info):
        raise alter_checks.NotPermitted("You may not change this table.")
    planned = alter.plan(user, info, change)
    alter.check_token(token, user, info, planned)
    return approvals.submit(user, request, info, approvals.DROP_COLUMN, planned.statements,
                            column=planned.change.column)


def _approval_failed(approval: Any, request: HttpRequest | None, info: TableInfo | None, message: str) -> NoReturn:
    """A refusal ``run`` does not audit itself (nothing ran): audited here as the change's failure."""
    record(alter.TABLE_ALTERED, request=request, actor=approval.requester,
           target=alter.target_label(info) if info else approval.table, outcome=Outcome.FAILURE,
           details={"connection_id": approval.connection_id, "schema": approval.schema or None,
                    "table": approval.table, "change": "DropColumn", "column": approval.column,
                    "approval_id": approval.pk, "error": message})
    raise approvals.ExecutionFailed(message)


def _run_approved_drop_column(approval: Any, approver: Any, request: HttpRequest | None) -> str:
    """The approved column drop, under the requester's grants, only if it is still exactly the statements shown."""
    requester, change = approval.requester, DropColumn(approval.column)
    info = None
    try:
        info = approvals.table_info(approval)
        planned = alter.plan(requester, info, change)
        if alter.canonical(planned.statements) != alter.canonical(list(approval.statements)):
            _approval_failed(approval, request, info, "The statements Bastion would run now are not the ones that "
                                                      "were approved, so nothing was run. The requester can ask again.")
        alter.run(requester, request, info, change, alter.preview_token(requester, info, planned),
            approved=approvals.approved_details(approval, approver))
    except alter.AlterFailed as exc:  # run audited it
        raise approvals.ExecutionFailed(str(exc)) from None
    except alter_checks.NotPermitted:
        _approval_failed(approval, request, info, f"{requester.get_username()} may no longer change this table, so "
                                                  "nothing was changed.")
    except (alter_checks.Refused, alter.PreviewMismatch, TableNotFound) as exc:
        _approval_failed(approval, request, info, str(exc) if not isinstance(exc, TableNotFound)
                         else "The table is no longer there, so nothing was run.")
    return f"Column “{approval.column}” dropped from “{approval.table}”."


approvals.EXECUTORS[approvals.DROP_COLUMN] = _run_approved_drop_column
