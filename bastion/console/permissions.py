"""One user's grants on one connection, answered for the console through the one policy (access.policy)."""

from __future__ import annotations

from typing import Any

from bastion.access.models import GLOBAL_ACTIONS, Action, ColumnMode
from bastion.access.policy import Resource, can_write_column, check, column_modes, holds_in_connection
from bastion.console.refs import TableRef
from bastion.schema_editor import approvals

WRITE_COLUMN_ACTIONS = frozenset({Action.INSERT, Action.UPDATE})


class UserGrants:
    """The GrantOracle the parser check and the SQLite authorizer both ask (answers memoised per run)."""

    def __init__(self, user: Any, connection_id: int) -> None:
        self.user = user
        self.connection_id = connection_id
        self._modes: dict[tuple[TableRef, str], ColumnMode] = {}
        self._answers: dict[tuple[Action, TableRef | None, str | None], bool] = {}
        self._waiting: frozenset[str] | None = None

    def needs_second_person(self, operation: str) -> bool:
        """Does the user's role make ``operation`` (approvals.DROP, EMPTY, DROP_COLUMN) wait for approval?"""
        if self._waiting is None:
            self._waiting = approvals.needed_operations(self.user)
        return operation in self._waiting

    def column_mode(self, table: TableRef, column: str) -> ColumnMode:
        key = (table, column)
        if key not in self._modes:
            view = column_modes(self.user, self.connection_id, table.schema, table.name, [column])[column]
            self._modes[key] = ColumnMode(view.mode)
        return self._modes[key]

    def may(self, action: Action, table: TableRef | None = None, column: str | None = None) -> bool:
        key = (action, table, column)
        if key not in self._answers:
            self._answers[key] = self._decide(Action(action), table, column)
        return self._answers[key]

    def _decide(self, action: Action, table: TableRef | None, column: str | None) -> bool:
        if action in GLOBAL_ACTIONS:
            return check(self.user, action)
        if table is None:
            return check(self.user, action, Resource(self.connection_id))
        resource = Resource(self.connection_id, table.schema, table.name, column)
        if column is not None and action in WRITE_COLUMN_ACTIONS:
            return can_write_column(self.user, action, resource)
        return check(self.user, action, resource)

    def sees_table(self, table: TableRef) -> bool:
        """Whether the user holds any data grant on or in ``table`` (else it must look like no table at all)."""
        return check(self.user, Action.VIEW, Resource(self.connection_id, table.schema, table.name))

    @property
    def may_write_somewhere(self) -> bool:
        """Users without query_write anywhere in the connection always run read-only (belt and braces)."""
        return holds_in_connection(self.user, Action.QUERY_WRITE, self.connection_id)

    @property
    def may_run_unverified(self) -> bool:
        """Statements the parser cannot account for run only for users trusted with the whole database."""
        return self.may(Action.QUERY_WRITE) and self.may(Action.MANAGE)


def may_open_console(user: Any, connection_id: int) -> bool:
    """The console opens for users holding ``query`` (or ``query_write``) on the connection or on a table in it."""
    return any(holds_in_connection(user, action, connection_id) for action in (Action.QUERY, Action.QUERY_WRITE))
