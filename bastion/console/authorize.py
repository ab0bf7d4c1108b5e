"""Deciding, before anything runs, whether a user may run an analysed statement (T21, T31).

The rules:
- what nobody may do (ATTACH, COPY ... PROGRAM, INTO OUTFILE, transaction control, ...) is refused;
- statements the analysis cannot account for run only for users holding ``query_write`` and ``manage``
  on the connection; the engine's guards still apply to them;
- reads need ``query`` on each table and every column read in clear: a hidden column is reported exactly
  like a column that does not exist, a masked one is named as masked (the console cannot mask results);
- reading a view also needs the right to read what the view's definition reads;
- writes need ``query_write`` and insert/update/delete on the table (and the right to set each column);
- DDL needs ``query_write`` and ``alter`` (create, alter) or ``drop`` (drop, truncate) on the table;
- anything else (GRANT, PRAGMA, ANALYZE, ...) needs ``query_write`` and ``manage``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bastion.access.models import Action, ColumnMode
from bastion.console.analysis import UNKNOWN_COLUMN, UNKNOWN_TABLE, Kind, Statement
from bastion.console.permissions import UserGrants
from bastion.console.refs import TableRef
from bastion.schema_editor import approvals

WRITE_ACTIONS = {"insert": Action.INSERT, "update": Action.UPDATE, "delete": Action.DELETE}
DDL_ACTIONS = {"alter": Action.ALTER, "drop": Action.DROP}
# A name the catalogue does not know is the user's mistake, not a statement Bastion cannot verify: it is
# reported in the very words used for a hidden column or an invisible table (T31).
_NAME_MISTAKES = [re.compile(re.escape(t).replace(re.escape("{column}"), ".*").replace(re.escape("{table}"), ".*"))
                  for t in (UNKNOWN_COLUMN, UNKNOWN_TABLE)]


def unknown_table(table: TableRef) -> str:
    return UNKNOWN_TABLE.format(table=table)


def refusal(statement: Statement, grants: UserGrants) -> str | None:
    """Why ``grants``' user may not run ``statement``, in plain words; None when they may."""
    if statement.forbidden:
        return statement.forbidden
    if not statement.verified:
        if grants.may_run_unverified:
            return None
        if any(p.fullmatch(statement.problem) for p in _NAME_MISTAKES):
            return statement.problem
        return (f"Bastion cannot verify this statement ({statement.problem.rstrip('.')}), so it runs only for "
                "users who hold both the query_write and manage grants.")
    if statement.kind == Kind.OTHER and not grants.may_run_unverified:
        return "Statements of this kind run only for users who hold both the query_write and manage grants."
    return (_reads_refusal(statement.reads, statement.star, grants)
            or _reads_refusal(statement.via_views, frozenset(), grants, through_view=True)
            or _writes_refusal(statement, grants)
            or _ddl_refusal(statement, grants))


def _reads_refusal(reads: Mapping[TableRef, frozenset[str]], star: frozenset[TableRef], grants: UserGrants,
                   *, through_view: bool = False) -> str | None:
    for table, columns in sorted(reads.items()):
        if not grants.sees_table(table):
            return ("A view this statement reads uses a table you cannot see." if through_view
                    else unknown_table(table))
        if not grants.may(Action.QUERY, table):
            return f'You do not hold the query grant on "{table}".'
        for column in sorted(columns):
            mode = grants.column_mode(table, column)
            if mode == ColumnMode.VISIBLE:
                continue
            if through_view:
                return "A view this statement reads uses columns you cannot read in clear."
            if table in star and mode == ColumnMode.HIDDEN:
                return f'SELECT * on "{table}" would read columns you cannot see: name the columns you need.'
            if mode == ColumnMode.MASKED:
                return (f'Column "{column}" of "{table}" is masked for you. The console cannot mask query '
                        "results, so it does not read masked columns; the table page shows them masked.")
            return UNKNOWN_COLUMN.format(column=column)
    return None


def _writes_refusal(statement: Statement, grants: UserGrants) -> str | None:
    for write in statement.writes:
        if not grants.sees_table(write.table):
            return unknown_table(write.table)
        action = WRITE_ACTIONS[write.action]
        if not (grants.may(Action.QUERY_WRITE, write.table) and grants.may(action, write.table)):
            return f'You may not {write.action} rows of "{write.table}" from the console.'
        for column in sorted(write.columns):
            if not grants.may(action, write.table, column):
                return f'You may not set the column "{column}" of "{write.table}".'
    return None


def _ddl_refusal(statement: Statement, grants: UserGrants) -> str | None:
    for change in statement.ddl:
        action = DDL_ACTIONS[change.action]
        if not (grants.may(Action.QUERY_WRITE, change.table) and grants.may(action, change.table)):
            verb = "change the structure of" if change.action == "alter" else "drop or empty"
            return f'You may not {verb} "{change.table}" from the console.'
        # The two-person rule: what must wait for another person's approval is asked for from the schema
        # editor, never run from the console (DROP and TRUNCATE are told apart only as "drop" here).
        if change.action == "drop" and (grants.needs_second_person(approvals.DROP)
                                        or grants.needs_second_person(approvals.EMPTY)):
            return (f'Your role needs another person\'s approval to drop or empty tables: use "Drop or empty…" on '
                    f'the page of "{change.table}", which asks for it.')
        if change.drops_column and grants.needs_second_person(approvals.DROP_COLUMN):
            return (f'Your role needs another person\'s approval to drop a column: use the structure page of '
                    f'"{change.table}", which asks for it.')
    return None
