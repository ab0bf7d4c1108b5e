"""Changing rows: the only code that writes to a table's rows (insert, update, delete, revert).

Every function re-checks the user's grants itself (views are not trusted to),
works in ONE transaction on the target database, binds every value
(values.bound: no SQL built from request data, T01), and writes exactly one
audit event inside that transaction, just before it commits: if the event
cannot be written, the change is rolled back (T33).

Edits are optimistic (T38): the edit form carries a sealed digest of every
value it showed (``original_token``); a save first locks the row and compares,
so the second of two saves from forms loaded at the same time is refused with
the values that changed, and nothing is overwritten. Audit events keep the
whole row before and after (hidden and masked columns too: the audit store is
allowed to), which is what ``revert`` restores from (T37), with the same check.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
import pymysql
from django.conf import settings
from django.db import transaction as db_transaction
from django.http import HttpRequest
from sqlalchemy import Connection as SAConnection
from sqlalchemy import TableClause, and_, column, delete, func, insert, select, table, text, update
from sqlalchemy.exc import DBAPIError

from bastion.access.models import Action, ColumnMode
from bastion.access.policy import ColumnView, Resource, can_write_column, check, column_modes
from bastion.audit.models import AuditEvent, Outcome
from bastion.audit.services import record
from bastion.connections import limits
from bastion.connections.engines import get_engine
from bastion.connections.errors import one_line, safe_message
from bastion.connections.models import Connection
from bastion.explorer import tokens
from bastion.explorer.rowkeys import RowKey, own_row_token, read_row_token, row_digest
from bastion.explorer.schema import ColumnInfo, KeyKind, TableInfo, TableNotFound, resolve_table
from bastion.explorer.values import Cell, bound, cell, is_binary, to_driver

INSERT, UPDATE, DELETE, BULK_DELETE, REVERT = "row.insert", "row.update", "row.delete", "row.bulk_delete", "row.revert"
ROW_EVENTS = (INSERT, UPDATE, DELETE, BULK_DELETE)
AUDIT_BLOB_LIMIT = 1024 * 1024  # binary values longer than this are audited by digest only
MAX_BULK_ROWS = 1000
LOCK_WAIT_SECONDS = 5  # how long a save waits for a row another transaction holds
BUSY = "Someone else is changing this table; try again."
STALE_FORM = "This form is too old or was altered; open the row again and redo your changes."

# Errors a user's values can cause: their message is shown, nothing is written.
_PG_USER_CLASSES = ("22", "23")  # data exception, integrity constraint violation
_PG_USER_STATES = frozenset({"42804"})  # datatype mismatch
_PG_BUSY_STATES = frozenset({"55P03", "40P01", "40001"})  # lock_not_available, deadlock, serialization
_MYSQL_USER_CODES = frozenset({
    1048, 1062, 1169, 1216, 1217, 1263, 1264, 1265, 1292, 1364, 1366, 1367, 1406, 1411, 1451, 1452, 1690,
    3140, 3819, 4025,
})
_MYSQL_BUSY_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock
_MYSQL_LOCK_WAIT = text("SET SESSION innodb_lock_wait_timeout = :seconds")
_MYSQL_DUPLICATE = re.compile(r"Duplicate entry '.*' for key", re.DOTALL)


class ChangeRefused(Exception):
    """The change was not made; ``message`` (also ``str()``) says why in one plain sentence, safe to show."""

    @property
    def message(self) -> str:
        return str(self)


class NotPermitted(ChangeRefused):
    """The user's grants do not allow this change (checked here, whatever the view checked)."""


class TableBusy(ChangeRefused):
    """Another transaction holds the row or the table (SQLite "database is locked"): try again."""


class EditConflict(ChangeRefused):
    """The row is not as the form (or the audit event) saw it; nothing was written.

    ``changes``: column name -> the row's current value as a Cell, masked per the
    user's view, for each changed column the user can see (hidden ones left out).
    ``gone``: the row no longer exists (deleted, or its key changed).
    """

    def __init__(self, message: str, changes: Mapping[str, Cell] | None = None, gone: bool = False) -> None:
        super().__init__(message)
        self.changes: dict[str, Cell] = dict(changes or {})
        self.gone = gone


# --- digests, audit values ---------------------------------------------------------------------------
def _digest(value: Any) -> str:
    canonical = json.dumps(tokens.tag_value(value), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _table_identity(info: TableInfo) -> list[Any]:
    return [info.connection.pk, info.schema, info.name]


def original_token(info: TableInfo, row: Mapping[str, Any]) -> str:
    """A sealed digest of each value of ``row`` as loaded into an edit form (every column the user sees)."""
    return tokens.seal("original", {"table": _table_identity(info),
                                    "digests": {name: _digest(value) for name, value in row.items()}})


def _original_digests(info: TableInfo, original: str) -> dict[str, str]:
    try:
        data = tokens.unseal("original", original)
    except tokens.BadToken:
        raise ChangeRefused(STALE_FORM) from None
    if not isinstance(data, dict) or data.get("table") != _table_identity(info) \
            or not isinstance(data.get("digests"), dict):
        raise ChangeRefused(STALE_FORM)
    return data["digests"]


def audit_value(value: Any) -> Any:
    """``value`` as stored in an audit event: tagged (tokens.tag_value), big binaries as a digest."""
    if is_binary(value) and len(value) > AUDIT_BLOB_LIMIT:
        return {"omitted": hashlib.sha256(bytes(value)).hexdigest(), "size": len(value)}
    if isinstance(value, str) and "\x00" in value:
        # The audit store replaces NUL characters; keep the exact text so a revert restores it.
        return {"nul": base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii")}
    return tokens.tag_value(value)


class ValueOmitted(ValueError):
    """An audited value was kept as a digest only (too large): it cannot be restored."""


def is_omitted(stored: Any) -> bool:
    return isinstance(stored, dict) and "omitted" in stored and "size" in stored


def from_audit(stored: Any) -> Any:
    """The database value an audit_value() result stands for; ValueOmitted for a digest-only value."""
    if is_omitted(stored):
        raise ValueOmitted(stored["omitted"])
    if isinstance(stored, dict) and set(stored) == {"nul"}:
        return base64.b64decode(stored["nul"]).decode("utf-8", "surrogatepass")
    return tokens.untag_value(stored)


def _audited(value: Any) -> Any:
    """audit_value() as the audit store gives it back (JSON round trip), for comparing with an event."""
    return json.loads(json.dumps(audit_value(value)))


def _row_audit(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {name: audit_value(value) for name, value in row.items()}


def _tagged(values: Sequence[Any]) -> list[Any]:
    return [tokens.tag_value(v) for v in values]


def _target(info: TableInfo) -> str:
    return f"{info.connection.name}: {info.schema + '.' if info.schema else ''}{info.name}"


def _details(info: TableInfo, **extra: Any) -> dict[str, Any]:
    return {"connection_id": info.connection.pk, "schema": info.schema, "table": info.name,
            "key_columns": list(info.key), **extra}


# --- permissions -------------------------------------------------------------------------------------
_VERBS = {Action.INSERT: "add rows to", Action.UPDATE: "change rows of", Action.DELETE: "delete rows of"}


def _resource(info: TableInfo, column_name: str | None = None) -> Resource:
    return Resource(info.connection.pk, info.schema, info.name, column_name)


def _require(user: Any, action: Action, info: TableInfo) -> None:
    if not info.editable:
        raise ChangeRefused("Rows of this table cannot be told apart (it is a view, or has no key), "
                            "so Bastion does not change them one by one.")
    if not check(user, action, _resource(info)):
        raise NotPermitted(f"You may not {_VERBS[action]} this table.")


def _views(user: Any, info: TableInfo) -> dict[str, ColumnView]:
    return column_modes(user, info.connection.pk, info.schema, info.name, info.column_names)


def _require_columns(user: Any, action: Action, info: TableInfo, names: Sequence[str],
                     views: Mapping[str, ColumnView]) -> None:
    """Every column in ``names`` exists, is shown to the user in clear, and may be written with ``action``."""
    for name in names:
        view = views.get(name)
        if info.column(name) is None or view is None or view.mode == ColumnMode.HIDDEN:
            raise NotPermitted(f"You may not set the column {name!r}.")  # the same words as for a hidden one
        if view.mode != ColumnMode.VISIBLE:
            raise NotPermitted(f"{name} is masked for you, so you may not set it.")
        if not can_write_column(user, action, _resource(info, name)):
            raise NotPermitted(f"You may not set {name}.")


def _visible_changes(names: Sequence[str], row: Mapping[str, Any],
                     views: Mapping[str, ColumnView]) -> dict[str, Cell]:
    shown = {}
    for name in names:
        view = views.get(name)
        if view is not None and view.mode != ColumnMode.HIDDEN and name in row:
            shown[name] = cell(row[name], view)
    return shown


# --- the transaction ---------------------------------------------------------------------------------
def _is_busy(exc: DBAPIError) -> bool:
    original = exc.orig
    if isinstance(original, sqlite3.OperationalError):
        return getattr(original, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) \
            or "database is locked" in str(original)
    if isinstance(original, psycopg.Error):
        return original.sqlstate in _PG_BUSY_STATES
    if isinstance(original, pymysql.MySQLError):
        return bool(original.args) and original.args[0] in _MYSQL_BUSY_CODES
    return False


def user_error_text(exc: DBAPIError) -> str | None:
    """The engine's one-line reason when ``exc`` is something the values caused; None otherwise."""
    original = exc.orig
    if isinstance(original, psycopg.Error):
        state = original.sqlstate or ""
        if not (state[:2] in _PG_USER_CLASSES or state in _PG_USER_STATES):
            return None
        # message_primary only: PostgreSQL's DETAIL may list the whole row, hidden columns included (T31).
        reason = original.diag.message_primary or "the values do not fit the table"
        constraint = original.diag.constraint_name
        if constraint and constraint not in reason:
            reason = f"{reason} (constraint {constraint})"
        return one_line(reason)
    if isinstance(original, pymysql.MySQLError):
        code = original.args[0] if original.args else None
        if code not in _MYSQL_USER_CODES:
            return None
        if code == 1062 and len(original.args) > 1:  # the duplicate value may include a hidden column's
            return one_line(_MYSQL_DUPLICATE.sub("Duplicate entry for key", str(original.args[1])))
        return safe_message(exc)
    if isinstance(original, sqlite3.IntegrityError | sqlite3.DataError):
        return safe_message(exc)
    if isinstance(original, sqlite3.OperationalError) and "too big" in str(original):
        return safe_message(exc)
    return None


_GENERIC_REASONS = (  # (words in the engine's message, SQLSTATE prefix or MySQL codes) -> what to say
    (("not null", "null value", "cannot be null", "doesn't have a default"), ("23502",), (1048, 1364),
     "a required value is missing"),
    (("unique", "duplicate"), ("23505",), (1062, 1169),
     "another row already has the same value in a column that must be unique"),
    (("foreign key",), ("23503",), (1216, 1217, 1451, 1452),
     "a value has no matching row in the table it refers to, or other rows still refer to this one"),
    (("check",), ("23514",), (3819, 4025), "a value breaks one of the table's check rules"),
)


def generic_reason(exc: DBAPIError) -> str:
    """What kind of rule refused the change, in words that name no column, table or constraint."""
    original = exc.orig
    state = getattr(original, "sqlstate", None) or ""
    code = original.args[0] if isinstance(original, pymysql.MySQLError) and original.args else None
    text = str(original).lower()
    for words, states, codes, reason in _GENERIC_REASONS:
        if state.startswith(states) or code in codes or any(word in text for word in words):
            return reason
    return "a value does not fit its column"


def _translated(exc: DBAPIError, discreet: bool = False) -> BaseException:
    if limits.is_timeout(exc):
        return TableBusy(f"The change took longer than {settings.EXPLORER_QUERY_TIMEOUT:g} seconds and was "
                         f"stopped; nothing was changed. {BUSY}")
    if _is_busy(exc):
        return TableBusy(BUSY)
    reason = user_error_text(exc)
    if reason is not None:
        shown = generic_reason(exc) if discreet else reason.rstrip(".")
        return ChangeRefused(f"The database refused the change: {shown}.")
    return exc


def _start(conn: SAConnection) -> None:
    """Make the transaction take write locks from its first read (the optimistic check is then race-free)."""
    name = conn.dialect.name
    if name == "sqlite":
        # pysqlite would only BEGIN (deferred) before the first write: the SELECT that checks
        # the row must already hold the write lock, or another writer could slip in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif name == "postgresql":
        conn.execute(select(func.set_config("lock_timeout", str(LOCK_WAIT_SECONDS * 1000), True)))
    elif name == "mysql":
        conn.execute(_MYSQL_LOCK_WAIT, {"seconds": LOCK_WAIT_SECONDS})  # the session's: every save sets it


@contextlib.contextmanager
def _transaction(info: TableInfo, views: Mapping[str, ColumnView]) -> Iterator[SAConnection]:
    """One transaction on the table's database; database errors a user can cause become ChangeRefused.

    When the user cannot see some columns of the table, the engine's words are not repeated: they
    may name a hidden column ("NOT NULL constraint failed: t.internal_flag"), so the message only
    says what kind of rule refused the change (T31).
    """
    try:
        with get_engine(info.connection).begin() as conn:
            _start(conn)
            with limits.statement_time_limit(conn, settings.EXPLORER_QUERY_TIMEOUT):
                yield conn
    except DBAPIError as exc:
        discreet = any(view.mode == ColumnMode.HIDDEN for view in views.values())
        translated = _translated(exc, discreet)
        if translated is exc:
            raise
        raise translated from None


# --- finding rows ------------------------------------------------------------------------------------
def _token_where(info: TableInfo, token: str, views: Mapping[str, ColumnView]) -> RowKey:
    """The row a token names in this table (rowkeys.read_row_token); ChangeRefused otherwise."""
    key = read_row_token(info, views, token)
    if key is None:
        raise ChangeRefused("That row link is not valid for this table (it may be old); open the row again.")
    return key


class _Found:
    """A row as locked for a change: every column's value, and its key."""

    def __init__(self, values: dict[str, Any], key: list[Any]) -> None:
        self.values = values
        self.key = key


def _select(conn: SAConnection, info: TableInfo, sa_table: TableClause, columns: Sequence[str],
            values: Sequence[Any], *, lock: bool = True) -> _Found | None:
    """The one row where ``columns`` = ``values`` (every column and the key), locked; None when there is none."""
    names = info.column_names
    key_exprs = [col.label(f"_bastion_key_{i}") for i, col in enumerate(info.key_columns(sa_table))]
    where = and_(*(info.sa_column(sa_table, name) == bound(value, info.dialect)
                   for name, value in zip(columns, values, strict=True)))
    statement = select(*(sa_table.c[n] for n in names), *key_exprs).select_from(sa_table).where(where).limit(2)
    if lock and info.dialect != "sqlite":  # SQLite: BEGIN IMMEDIATE already holds the write lock
        statement = statement.with_for_update()
    found = conn.execute(statement).fetchall()
    if len(found) > 1:
        raise ChangeRefused("That row link matches more than one row; nothing was changed.")
    if not found:
        return None
    data = found[0]
    return _Found(dict(zip(names, data[: len(names)], strict=True)), list(data[len(names):]))


def _key_where(info: TableInfo, sa_table: TableClause, key: Sequence[Any]) -> Any:
    return and_(*(info.sa_column(sa_table, name) == bound(value, info.dialect)
                  for name, value in zip(info.key, key, strict=True)))


def _conflict(message: str, digests: Mapping[str, str], found: _Found,
              views: Mapping[str, ColumnView]) -> None:
    changed = [name for name, digest in digests.items()
               if name not in found.values or _digest(found.values[name]) != digest]
    if changed:
        raise EditConflict(message, _visible_changes(changed, found.values, views))


def _same(new: Any, current: Any, column_info: ColumnInfo, dialect: str) -> bool:
    """Would writing ``new`` leave ``current`` as it is? (So unchanged columns are not written.)"""
    if new is None or current is None:
        return new is None and current is None
    try:
        if column_info.kind == "json":
            def structure(value: Any) -> Any:
                return json.loads(value) if isinstance(value, str | bytes) else value
            return structure(new) == structure(current)
        if is_binary(new) or is_binary(current):
            return is_binary(new) and is_binary(current) and bytes(new) == bytes(current)
        if isinstance(current, dt.timedelta) and isinstance(new, dt.time):  # MySQL TIME reads as a duration
            return current == dt.datetime.combine(dt.date.min, new) - dt.datetime.min
        # '1' and 1 differ (a column without a type keeps both); True and 1 do not (stored alike).
        return bool(new == current or to_driver(new, dialect) == current)
    except (TypeError, ValueError):
        return False


def _after_write(conn: SAConnection, info: TableInfo, sa_table: TableClause, key: Sequence[Any]) -> _Found:
    found = _select(conn, info, sa_table, info.key, key, lock=False)
    if found is None:  # a rule, trigger or policy hid the row we just wrote
        raise ChangeRefused("The database accepted the change but the row cannot be read back; "
                            "nothing was changed.")
    return found


# --- insert ------------------------------------------------------------------------------------------
def _insert(conn: SAConnection, info: TableInfo, values: Mapping[str, Any], *,
            extra_key: Sequence[Any] | None = None) -> _Found:
    """INSERT one row and read it back; ``extra_key``: the rowid to give it (re-inserting a deleted row)."""
    sa_table = info.sa_table()
    target = sa_table
    assignments: dict[Any, Any] = {name: bound(value, info.dialect) for name, value in values.items()}
    if extra_key is not None and info.key_kind == KeyKind.ROWID:
        target = table(info.name, column(info.key[0]), *(column(c.name) for c in info.columns), schema=info.schema)
        assignments[info.key[0]] = bound(extra_key[0], info.dialect)
    statement = insert(target).values(assignments)
    key: list[Any] | None = None
    if getattr(conn.dialect, "insert_returning", False):
        returned = conn.execute(statement.returning(*info.key_columns(sa_table))).fetchone()
        key = None if returned is None else list(returned)
    else:  # MySQL: the key is what was given, or the auto-increment value
        result = conn.execute(statement)
        if all(values.get(name) is not None for name in info.key):
            key = [values[name] for name in info.key]
        elif len(info.key) == 1 and result.lastrowid:
            key = [result.lastrowid]
    if key is None:
        raise ChangeRefused("The row was not added: Bastion could not tell which key the database gave it.")
    return _after_write(conn, info, sa_table, key)


def insert_row(user: Any, request: HttpRequest | None, info: TableInfo, values: Mapping[str, Any]) -> str:
    """Add one row (``values``: column -> parsed value; columns left out get their default); its row token."""
    _require(user, Action.INSERT, info)
    views = _views(user, info)
    _require_columns(user, Action.INSERT, info, list(values), views)
    with _transaction(info, views) as conn:
        found = _insert(conn, info, values)
        record(INSERT, request=request, actor=user, target=_target(info),
               details=_details(info, key=_tagged(found.key)), after=_row_audit(found.values))
    return own_row_token(info, found.key)


# --- update ------------------------------------------------------------------------------------------
def _update(conn: SAConnection, info: TableInfo, found: _Found, changes: Mapping[str, Any]) -> _Found:
    sa_table = info.sa_table()
    statement = update(sa_table).where(_key_where(info, sa_table, found.key)).values(
        {name: bound(value, info.dialect) for name, value in changes.items()})
    if getattr(conn.dialect, "update_returning", False):
        rows = conn.execute(statement.returning(*info.key_columns(sa_table))).fetchall()
        if len(rows) != 1:
            raise EditConflict("This row no longer exists; nothing was saved.", gone=True)
        new_key = list(rows[0])
    else:
        if conn.execute(statement).rowcount != 1:
            raise EditConflict("This row no longer exists; nothing was saved.", gone=True)
        new_key = [changes.get(name, value) for name, value in zip(info.key, found.key, strict=True)]
    return _after_write(conn, info, sa_table, new_key)


def _changed_values(info: TableInfo, found: _Found, values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items()
            if not _same(value, found.values[name], info.column(name), info.dialect)}  # type: ignore[arg-type]


def _update_details(info: TableInfo, before: _Found, after: _Found, columns: Sequence[str],
                    **extra: Any) -> dict[str, Any]:
    details = _details(info, key=_tagged(after.key), columns=list(columns), **extra)
    if after.key != before.key:
        details["previous_key"] = _tagged(before.key)
    return details


def update_row(user: Any, request: HttpRequest | None, info: TableInfo, row_token: str, original: str,
               values: Mapping[str, Any]) -> str:
    """Save an edit form: ``original`` from original_token() when the form was loaded; the row's new token.

    EditConflict when the row changed since (with the changed values) or is gone; only the columns
    whose value differs are written.
    """
    _require(user, Action.UPDATE, info)
    views = _views(user, info)
    _require_columns(user, Action.UPDATE, info, list(values), views)
    digests = _original_digests(info, original)
    key = _token_where(info, row_token, views)
    with _transaction(info, views) as conn:
        found = _select(conn, info, info.sa_table(), key.columns, key.values)
        if found is None:
            raise EditConflict("This row no longer exists (someone deleted it or changed its key); nothing was "
                               "saved.", gone=True)
        _conflict("Someone changed this row after you opened it; nothing was saved. Check their values, "
                  "then edit again.", digests, found, views)
        changes = _changed_values(info, found, values)
        after = _update(conn, info, found, changes) if changes else found
        record(UPDATE, request=request, actor=user, target=_target(info),
               details=_update_details(info, found, after, list(changes)),
               before=_row_audit(found.values), after=_row_audit(after.values))
    return own_row_token(info, after.key)


# --- delete ------------------------------------------------------------------------------------------
def _delete(conn: SAConnection, info: TableInfo, found: _Found) -> None:
    sa_table = info.sa_table()
    if conn.execute(delete(sa_table).where(_key_where(info, sa_table, found.key))).rowcount != 1:
        raise EditConflict("This row no longer exists; nothing was deleted.", gone=True)


def delete_row(user: Any, request: HttpRequest | None, info: TableInfo, row_token: str,
               original: str | None = None) -> None:
    """Delete one row; with ``original`` (from an edit form) only if it is still as the form showed it."""
    _require(user, Action.DELETE, info)
    views = _views(user, info)
    digests = _original_digests(info, original) if original is not None else None
    key = _token_where(info, row_token, views)
    with _transaction(info, views) as conn:
        found = _select(conn, info, info.sa_table(), key.columns, key.values)
        if found is None:
            raise EditConflict("This row no longer exists; nothing was deleted.", gone=True)
        if digests is not None:
            _conflict("Someone changed this row after you opened it; nothing was deleted.", digests, found, views)
        _delete(conn, info, found)
        record(DELETE, request=request, actor=user, target=_target(info),
               details=_details(info, key=_tagged(found.key)), before=_row_audit(found.values))


def delete_rows(user: Any, request: HttpRequest | None, info: TableInfo, row_tokens: Sequence[str]) -> int:
    """Delete every row named by ``row_tokens``, all or nothing; how many were deleted."""
    _require(user, Action.DELETE, info)
    wanted = list(dict.fromkeys(row_tokens))
    if not wanted:
        raise ChangeRefused("No rows were selected.")
    if len(wanted) > MAX_BULK_ROWS:
        raise ChangeRefused(f"At most {MAX_BULK_ROWS} rows can be deleted at once.")
    views = _views(user, info)
    shown = [c for c in info.columns if views[c.name].mode != ColumnMode.HIDDEN]
    keys = [_token_where(info, token, views) for token in wanted]
    with _transaction(info, views) as conn:
        sa_table = info.sa_table()
        rows: dict[str, _Found] = {}
        for key in keys:
            found = _select(conn, info, sa_table, key.columns, key.values)
            if found is None:
                raise EditConflict("Some of the selected rows no longer exist; nothing was deleted.", gone=True)
            if key.digest is not None and row_digest(found.values, shown) != key.digest:
                raise EditConflict("Some of the selected rows changed after the page was loaded; nothing was "
                                   "deleted. Reload the page and select them again.")
            rows.setdefault(_digest(found.key), found)  # two tokens (by different keys) for one row
        for found in rows.values():
            _delete(conn, info, found)
        record(BULK_DELETE, request=request, actor=user, target=_target(info),
               details=_details(info, keys=[_tagged(f.key) for f in rows.values()], count=len(rows)),
               before=[_row_audit(f.values) for f in rows.values()])
    return len(rows)


# --- revert ------------------------------------------------------------------------------------------
CHANGED_SINCE = "This row has changed since that event; nothing was reverted."


def _event_table(event: AuditEvent) -> TableInfo:
    details = event.details or {}
    connection = Connection.objects.filter(pk=details.get("connection_id")).first()
    if connection is None:
        raise ChangeRefused("The database of that event is no longer registered; nothing was reverted.")
    try:
        return resolve_table(connection, details.get("schema"), str(details.get("table") or ""))
    except TableNotFound:
        raise ChangeRefused("The table of that event no longer exists; nothing was reverted.") from None


def _event_key(info: TableInfo, event: AuditEvent, tagged: Any) -> list[Any]:
    if (event.details or {}).get("key_columns") != list(info.key) or not isinstance(tagged, list):
        raise ChangeRefused("The table's key has changed since that event; it cannot be reverted here.")
    return [tokens.untag_value(v) for v in tagged]


def _still_as_left(found: _Found, left: Mapping[str, Any], views: Mapping[str, ColumnView]) -> None:
    changed = [name for name, stored in left.items()
               if name not in found.values or _audited(found.values[name]) != stored]
    if changed:
        raise EditConflict(CHANGED_SINCE, _visible_changes(changed, found.values, views))


def _restorable(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    try:
        return {name: from_audit(row[name]) for name in columns}
    except ValueOmitted:
        raise ChangeRefused("That event kept a value too large for the audit log only as a digest, so it "
                            "cannot be restored; nothing was reverted.") from None


def _revert_insert(conn: SAConnection, info: TableInfo, event: AuditEvent,
                   views: Mapping[str, ColumnView]) -> tuple[dict[str, Any], Any, Any]:
    key = _event_key(info, event, event.details.get("key"))
    found = _select(conn, info, info.sa_table(), info.key, key)
    if found is None:
        raise EditConflict("That row has been deleted since; nothing was reverted.", gone=True)
    _still_as_left(found, event.after or {}, views)
    _delete(conn, info, found)
    return {"key": _tagged(found.key)}, _row_audit(found.values), None


def _revert_update(user: Any, conn: SAConnection, info: TableInfo, event: AuditEvent,
                   views: Mapping[str, ColumnView]) -> tuple[dict[str, Any], Any, Any]:
    key = _event_key(info, event, event.details.get("key"))
    columns = [c for c in event.details.get("columns", []) if isinstance(c, str)]
    if not columns:
        raise ChangeRefused("That save changed nothing, so there is nothing to revert.")
    if any(views.get(c) is None or views[c].mode == ColumnMode.HIDDEN for c in columns):
        raise NotPermitted("That change set columns you may not set; nothing was reverted.")  # names kept back
    _require_columns(user, Action.UPDATE, info, columns, views)
    found = _select(conn, info, info.sa_table(), info.key, key)
    if found is None:
        raise EditConflict("That row no longer exists (deleted, or its key changed); nothing was reverted.",
                           gone=True)
    _still_as_left(found, event.after or {}, views)
    restore = _restorable(event.before or {}, columns)
    after = _update(conn, info, found, restore) if restore else found
    extra = {"key": _tagged(after.key), "columns": columns}
    if after.key != found.key:
        extra["previous_key"] = _tagged(found.key)
    return extra, _row_audit(found.values), _row_audit(after.values)


def _reinsert(user: Any, conn: SAConnection, info: TableInfo, event: AuditEvent, row: Mapping[str, Any],
              tagged_key: Any, views: Mapping[str, ColumnView]) -> _Found:
    columns = [c.name for c in info.columns if c.name in row]
    refused = [name for name in columns
               if views.get(name, ColumnView(ColumnMode.HIDDEN, None)).mode != ColumnMode.VISIBLE
               or not can_write_column(user, Action.INSERT, _resource(info, name))]
    if refused:
        visible = [n for n in refused if views.get(n) is not None and views[n].mode != ColumnMode.HIDDEN]
        named = f" ({', '.join(visible)})" if visible and len(visible) == len(refused) else ""
        raise NotPermitted(f"Restoring this row would set columns you may not set{named}; nothing was reverted.")
    key = _event_key(info, event, tagged_key)
    if info.key_kind != KeyKind.CTID and _select(conn, info, info.sa_table(), info.key, key) is not None:
        raise EditConflict("A row with this key exists again; nothing was reverted.")
    values = _restorable(row, columns)
    return _insert(conn, info, values, extra_key=key if info.key_kind == KeyKind.ROWID else None)


def _revert_deletes(user: Any, conn: SAConnection, info: TableInfo, event: AuditEvent,
                    views: Mapping[str, ColumnView]) -> tuple[dict[str, Any], Any, Any]:
    if event.action == DELETE:
        found = _reinsert(user, conn, info, event, event.before or {}, event.details.get("key"), views)
        return {"key": _tagged(found.key)}, None, _row_audit(found.values)
    rows, keys = event.before or [], event.details.get("keys") or []
    if not isinstance(rows, list) or len(rows) != len(keys):
        raise ChangeRefused("That event does not hold the rows it deleted; nothing was reverted.")
    restored = [_reinsert(user, conn, info, event, row, key, views) for row, key in zip(rows, keys, strict=True)]
    return ({"keys": [_tagged(f.key) for f in restored], "count": len(restored)}, None,
            [_row_audit(f.values) for f in restored])


_REVERSE_ACTION = {INSERT: Action.DELETE, UPDATE: Action.UPDATE, DELETE: Action.INSERT, BULK_DELETE: Action.INSERT}


def revert(user: Any, request: HttpRequest | None, event_id: int) -> None:
    """Undo the row event ``event_id`` (AuditEvent pk) if the row is still as the event left it.

    insert -> delete the row; update -> restore the changed columns' before values;
    delete / bulk delete -> insert the rows again. Needs the grants the reverse change needs.
    Writes one "row.revert" event naming the reverted event's seq.
    """
    # One metadata transaction around the check and the change: the event's row is locked (PostgreSQL;
    # SQLite serialises writers anyway), so two reverts of one event cannot both pass the check.
    with db_transaction.atomic():
        event = AuditEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            raise ChangeRefused("There is no such event.")
        _revert_locked(user, request, event)


def _revert_locked(user: Any, request: HttpRequest | None, event: AuditEvent) -> None:
    if event.action == REVERT:
        raise ChangeRefused("A revert cannot itself be reverted; change the row again instead.")
    if event.action not in ROW_EVENTS or event.outcome != Outcome.SUCCESS or not isinstance(event.details, dict):
        raise ChangeRefused("Only row changes (insert, update, delete) can be reverted.")
    earlier = AuditEvent.objects.filter(action=REVERT, details__reverted_seq=event.seq).order_by("seq").first()
    if earlier is not None:
        raise ChangeRefused(f"Event #{event.seq} was already reverted (by event #{earlier.seq}); "
                            f"nothing was reverted.")
    info = _event_table(event)
    _require(user, _REVERSE_ACTION[event.action], info)
    views = _views(user, info)
    with _transaction(info, views) as conn:
        if event.action == INSERT:
            extra, before, after = _revert_insert(conn, info, event, views)
        elif event.action == UPDATE:
            extra, before, after = _revert_update(user, conn, info, event, views)
        else:
            extra, before, after = _revert_deletes(user, conn, info, event, views)
        record(REVERT, request=request, actor=user, target=_target(info),
               details=_details(info, reverted_seq=event.seq, reverted_action=event.action, **extra),
               before=before, after=after)
