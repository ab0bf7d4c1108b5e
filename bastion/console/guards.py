"""The engine's own guards around console statements (T21, T22, T28): the second line behind the parser.

The console checks every statement before running it; while the statements
run, the engine enforces the same limits again, so a gap in the parser is not
a hole:
- a time limit on every engine (bastion.connections.limits);
- read-only runs in a transaction the engine keeps read-only: PostgreSQL
  ``SET TRANSACTION READ ONLY``; MySQL/MariaDB ``SET SESSION TRANSACTION READ
  ONLY`` before the block's START TRANSACTION (a read-only transaction alone
  does not stop DDL, which commits it and runs outside it); SQLite
  ``PRAGMA query_only``;
- SQLite: the user's grants enforced by the authorizer (``sqlite_grant_policy``),
  on top of the always-on T22 guard;
- a statement that ends the block's transaction (a COMMIT typed by the user, or
  anything run after the caller's own commit) stops the block: PostgreSQL's
  read-only mode and time limit end with the transaction, and a MySQL user who
  switched the session to read-write would get a read-write transaction next.

Pooled connections are shared by users: whatever happens inside (an error, a
timeout, an exception in the caller, a client that went away), every setting is
put back on the way out, and a connection whose settings could not be put back
is invalidated rather than returned to the pool.

How SQLite reports statements to the authorizer (SQLite 3.40, verified in
tests/test_console_guards.py), which ``sqlite_grant_policy`` relies on:
- a table read without a column (``count(*)``, ``SELECT 1 FROM t``) is an
  SQLITE_READ of column ``''``, with database None unless the name was
  qualified; ``rowid`` is reported as the INTEGER PRIMARY KEY column it aliases,
  else as ``'ROWID'`` (for ``rowid``, ``oid`` and ``_rowid_`` alike);
- reading a view reports the view's columns and, with the view's name as the
  5th argument, the base table's columns; a CTE's reads carry the CTE's name
  there, so any user can put a trigger's name in that argument of a read;
- a trigger's statements carry the trigger's name in the 5th argument; foreign
  key actions (ON DELETE CASCADE) are reported as the user's own writes;
- DDL writes sqlite_master/sqlite_temp_master (the first write is reported
  before the DDL code itself); DROP TABLE also reports a DELETE of the table and,
  for an AUTOINCREMENT table, of sqlite_sequence; ALTER TABLE ... RENAME an
  UPDATE of sqlite_sequence.name; CREATE INDEX (and a UNIQUE constraint) reads
  of the indexed columns right after the CREATE_INDEX, then a REINDEX of it; the
  first AUTOINCREMENT table creates sqlite_sequence (and ANALYZE sqlite_stat1)
  through an SQLITE_CREATE_TABLE. SQLite refuses user-typed writes to the
  schema tables and user-typed CREATE of ``sqlite_`` names;
- an AUTOINCREMENT insert reports only the INSERT (sqlite_sequence is written
  unreported); user-typed REINDEX reports nothing;
- table-valued functions (``json_each``, ``pragma_table_info(...)``) are reads of
  a table of that name; the pragma ones also report the PRAGMA.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from pymysql.constants import SERVER_STATUS
from sqlalchemy import Connection, RootTransaction, event

from bastion.access.models import Action, ColumnMode
from bastion.connections import limits
from bastion.connections.sqlite_guard import (
    PRAGMAS_READ_ONLY,
    PRAGMAS_WITH_NAME,
    Policy,
    install_authorizer,
    policy_applied,
)
from bastion.console.refs import GrantOracle, TableRef
from bastion.logs import get_logger

log = get_logger("bastion.console")


class TransactionEnded(RuntimeError):
    """A statement ran, or would run, outside the transaction the block opened, hence without its guards."""


@contextlib.contextmanager
def guarded_transaction(sa_connection: Connection, *, read_only: bool, timeout: float,
                        sqlite_policy: Policy | None = None) -> Iterator[None]:
    """Run the block in the console's transaction on ``sa_connection`` under the engine's guards.

    No transaction may be open on ``sa_connection`` yet. The caller commits with
    ``sa_connection.commit()`` to keep changes, as the block's last step: any
    statement after that raises TransactionEnded. Whatever was not committed is
    rolled back when the block ends, and every setting it changed is put back.
    ``sqlite_policy`` (SQLite only) is installed on top of the T22 guard for the block.
    """
    dialect = sa_connection.dialect.name
    if sqlite_policy is not None and dialect != "sqlite":
        raise ValueError("an SQLite authorizer policy was given for a connection to another engine")
    raised: BaseException | None = None
    try:
        with contextlib.ExitStack() as stack:
            try:
                transaction = stack.enter_context(_transaction(sa_connection, read_only))
                if dialect == "sqlite" and read_only:
                    # Before the time limit, so that it is put back after the limit is off.
                    stack.enter_context(_sqlite_query_only(_raw(sa_connection)))
                stack.enter_context(limits.statement_time_limit(sa_connection, timeout))
                if sqlite_policy is not None:
                    stack.enter_context(policy_applied(_raw(sa_connection), sqlite_policy))
                starts = sqlite_policy.statement_starts if isinstance(sqlite_policy, _GrantPolicy) else None
                stack.enter_context(_transaction_kept(sa_connection, transaction, read_only, starts))
                yield
            except BaseException as exc:
                raised = exc
                raise
    except BaseException as exc:
        if exc is raised:
            raise
        # Putting a setting back failed: the session's state is unknown, so it must not serve anyone else.
        sa_connection.invalidate()
        if raised is None:
            raise
        # The block's own exception is the one the caller must see; the cleanup failure goes to the log.
        log.warning("console_guards_not_put_back", error=type(exc).__name__, exc_info=exc)
        raise raised from None


def _raw(sa_connection: Connection) -> Any:
    return sa_connection.connection.dbapi_connection


@contextlib.contextmanager
def _transaction(sa_connection: Connection, read_only: bool) -> Iterator[RootTransaction]:
    """Begin the block's transaction in the engine's read-only mode; roll back what is left at the end."""
    transaction = sa_connection.begin()  # refuses when a transaction is open already
    try:
        dialect = sa_connection.dialect.name
        if dialect == "postgresql":
            if read_only:
                sa_connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield transaction
        elif dialect == "mysql":
            with _mysql_session_read_only(sa_connection, read_only):
                # Explicit, so the server reports the transaction open from the start (see _transaction_kept).
                sa_connection.exec_driver_sql("START TRANSACTION")
                yield transaction
        elif dialect == "sqlite":
            # Python's sqlite3 begins a transaction only before INSERT/UPDATE/DELETE, so DDL would
            # commit at once; an explicit BEGIN makes the whole block one transaction. A writing run
            # takes the write lock at once: upgrading a read lock later can fail with SQLITE_BUSY.
            sa_connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
            yield transaction
        else:
            raise ValueError(f"no guarded transaction for the {dialect!r} dialect")
    finally:
        sa_connection.rollback()


# The session variable holding the default access mode of new transactions.
_MYSQL_READ_ONLY_VARIABLE = {True: "SELECT @@SESSION.tx_read_only", False: "SELECT @@SESSION.transaction_read_only"}


@contextlib.contextmanager
def _mysql_session_read_only(sa_connection: Connection, read_only: bool) -> Iterator[None]:
    """Make the session's transactions read-only for the block (when ``read_only``).

    START TRANSACTION READ ONLY (or SET TRANSACTION READ ONLY before it) stops writes but
    not DDL: the DDL statement commits the read-only transaction and runs outside it.
    With the session read-only, the DDL is refused too (error 1792).
    """
    mariadb = bool(getattr(sa_connection.dialect, "is_mariadb", False))
    change = read_only and not sa_connection.exec_driver_sql(_MYSQL_READ_ONLY_VARIABLE[mariadb]).scalar_one()
    if change:
        sa_connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    try:
        yield
    finally:
        if change:
            sa_connection.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")


_QUERY_ONLY = {True: "PRAGMA query_only = ON", False: "PRAGMA query_only = OFF"}


@contextlib.contextmanager
def _sqlite_query_only(raw: sqlite3.Connection) -> Iterator[None]:
    """``PRAGMA query_only`` for the block: SQLite then refuses every write, temporary tables included."""
    previous = bool(raw.execute("PRAGMA query_only").fetchone()[0])
    _set_query_only(raw, True)
    try:
        yield
    finally:
        _set_query_only(raw, previous)


def _set_query_only(raw: sqlite3.Connection, on: bool) -> None:
    # The guard refuses to set pragmas to everyone, Bastion included: it is off for this one
    # statement of ours (no user statement runs meanwhile) and always comes back.
    raw.set_authorizer(None)
    try:
        raw.execute(_QUERY_ONLY[on])
    finally:
        install_authorizer(raw)


@contextlib.contextmanager
def _transaction_kept(sa_connection: Connection, transaction: RootTransaction, read_only: bool,
                      statement_starts: Callable[[], None] | None) -> Iterator[None]:
    """Refuse statements once the block's transaction has ended; tell the SQLite policy where statements start.

    A statement that ends the transaction is reported right after it ran, so nothing runs after it.
    MySQL commits around DDL by itself: there a read-write block's transaction is not watched
    (its guards are session settings, which survive the commit).
    """
    watched = sa_connection.dialect.name != "mysql" or read_only

    def before(conn: Connection, *_args: Any) -> None:
        if conn.get_transaction() is not transaction:
            raise TransactionEnded("The console's transaction has ended; no further statement may run in it.")
        if statement_starts is not None:
            statement_starts()

    def after(conn: Connection, *_args: Any) -> None:
        if watched and not _dbapi_in_transaction(_raw(conn)):
            raise TransactionEnded("A statement ended the console's transaction; the run stops here.")

    event.listen(sa_connection, "before_cursor_execute", before)
    event.listen(sa_connection, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(sa_connection, "after_cursor_execute", after)
        event.remove(sa_connection, "before_cursor_execute", before)


def _dbapi_in_transaction(raw: Any) -> bool:
    if isinstance(raw, sqlite3.Connection):
        return raw.in_transaction
    if isinstance(raw, psycopg.Connection):
        return raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return bool(raw.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)  # PyMySQL


# --- SQLite: one user's grants in the authorizer ---------------------------------------------
OK, DENY = sqlite3.SQLITE_OK, sqlite3.SQLITE_DENY
# SQLite's own catalogue (reported as sqlite_master / sqlite_temp_master whatever the spelling).
SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})
SEQUENCE_TABLE = "sqlite_sequence"
STATISTICS_PREFIX = "sqlite_stat"  # sqlite_stat1 (and stat4 where compiled in): ANALYZE's results
# Table-valued functions: reading them reads no table of the database.
TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"}) | {
    f"pragma_{name}" for name in PRAGMAS_READ_ONLY | PRAGMAS_WITH_NAME}
# Read-only pragmas about one table (or index, checked as a table of that name), open to its readers.
PRAGMAS_ABOUT_A_TABLE = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"})
ROW_WRITES = {sqlite3.SQLITE_INSERT: Action.INSERT, sqlite3.SQLITE_DELETE: Action.DELETE,
              sqlite3.SQLITE_UPDATE: Action.UPDATE}
ALWAYS_ALLOWED = frozenset({
    sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE,
    sqlite3.SQLITE_FUNCTION,  # the guard has refused the dangerous ones already
    # Python's sqlite3 runs BEGIN/COMMIT itself while the policy is on; the parser refuses user-typed ones.
    sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT,
})
MAINTENANCE = frozenset({sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_REINDEX,
                         sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_VTABLE})
# DDL codes: which argument names the table concerned, and the grant they need on it.
DDL = {
    sqlite3.SQLITE_CREATE_TABLE: (1, Action.ALTER), sqlite3.SQLITE_CREATE_TEMP_TABLE: (1, Action.ALTER),
    sqlite3.SQLITE_CREATE_VIEW: (1, Action.ALTER), sqlite3.SQLITE_CREATE_TEMP_VIEW: (1, Action.ALTER),
    sqlite3.SQLITE_CREATE_INDEX: (2, Action.ALTER), sqlite3.SQLITE_CREATE_TEMP_INDEX: (2, Action.ALTER),
    sqlite3.SQLITE_CREATE_TRIGGER: (2, Action.ALTER), sqlite3.SQLITE_CREATE_TEMP_TRIGGER: (2, Action.ALTER),
    sqlite3.SQLITE_ALTER_TABLE: (2, Action.ALTER),  # arg1 is the database there
    sqlite3.SQLITE_DROP_TABLE: (1, Action.DROP), sqlite3.SQLITE_DROP_TEMP_TABLE: (1, Action.DROP),
    sqlite3.SQLITE_DROP_VIEW: (1, Action.DROP), sqlite3.SQLITE_DROP_TEMP_VIEW: (1, Action.DROP),
    sqlite3.SQLITE_DROP_INDEX: (2, Action.DROP), sqlite3.SQLITE_DROP_TEMP_INDEX: (2, Action.DROP),
    sqlite3.SQLITE_DROP_TRIGGER: (2, Action.DROP), sqlite3.SQLITE_DROP_TEMP_TRIGGER: (2, Action.DROP),
}
TRIGGER_DDL = frozenset({sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
                         sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_TRIGGER})
CREATE_TRIGGER = frozenset({sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_TEMP_TRIGGER})
DROPS_WITH_ROWS = frozenset({sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_TEMP_TABLE, sqlite3.SQLITE_DROP_VIEW,
                             sqlite3.SQLITE_DROP_TEMP_VIEW, sqlite3.SQLITE_DROP_VTABLE})
CREATE_INDEX = frozenset({sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TEMP_INDEX})

Key = tuple[int, str | None, str | None, str | None]


def sqlite_grant_policy(grants: GrantOracle, *, trigger_names: frozenset[str] = frozenset()) -> Policy:
    """The SQLite authorizer policy that enforces one user's grants while their console statements run.

    ``trigger_names``: the triggers already in the file. Their writes are allowed: a
    trigger is the schema owner's code (creating one needs alter and manage), run on the
    user's behalf. Their reads are checked like the user's own, because a CTE named like a
    trigger puts that name on its reads too.

    Meant for ``guarded_transaction``, which tells the policy where each statement starts:
    what SQLite does on behalf of an authorised DDL statement is allowed within that statement only.
    """
    return _GrantPolicy(grants, trigger_names)


class _GrantPolicy:
    """The policy's state for one run: memoised answers, the triggers trusted, what authorised DDL brings along."""

    def __init__(self, grants: GrantOracle, trigger_names: frozenset[str]) -> None:
        self._grants = grants
        self._triggers = {name.casefold() for name in trigger_names}
        self._decisions: dict[Key, int] = {}
        # Reports SQLite makes while carrying out a DDL statement authorised in the statement being
        # prepared (DROP TABLE deletes the rows, CREATE INDEX reindexes); cleared at each statement.
        self._follow_ons: set[Key] = set()
        # The table whose columns an authorised CREATE INDEX (or UNIQUE constraint) is reading: its
        # reads come right after the CREATE_INDEX report, and return nothing to the user.
        self._indexing: tuple[str | None, str | None] | None = None

    def statement_starts(self) -> None:
        self._follow_ons.clear()
        self._indexing = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, database: str | None,
                 source: str | None) -> int:
        if self._indexing is not None:
            if action == sqlite3.SQLITE_READ and (arg1, database) == self._indexing:
                return OK
            self._indexing = None
        if action in ROW_WRITES and source is not None and source.casefold() in self._triggers:
            return OK
        key = (action, arg1, arg2, database)
        if key in self._follow_ons:
            return OK
        decision = self._decisions.get(key)
        if decision is None:  # the authorizer is asked about every column at prepare time
            decision = self._decisions[key] = self._decide(action, arg1, arg2, database)
        if decision == OK:
            self._authorised(action, arg1, arg2, database)
        return decision

    def _authorised(self, action: int, arg1: str | None, arg2: str | None, database: str | None) -> None:
        if action in TRIGGER_DDL and arg1:
            # A trigger created or dropped in this run is no longer the schema owner's code.
            self._triggers.discard(arg1.casefold())
        if action in DROPS_WITH_ROWS:
            self._follow_ons.add((sqlite3.SQLITE_DELETE, arg1, None, database))
            if action in (sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_TEMP_TABLE):
                self._follow_ons.add((sqlite3.SQLITE_DELETE, SEQUENCE_TABLE, None, database))
        elif action == sqlite3.SQLITE_ALTER_TABLE:
            self._follow_ons.add((sqlite3.SQLITE_UPDATE, SEQUENCE_TABLE, "name", arg1))
        elif action in CREATE_INDEX:
            self._follow_ons.add((sqlite3.SQLITE_REINDEX, arg1, None, database))
            self._indexing = (arg2, database)

    def _decide(self, action: int, arg1: str | None, arg2: str | None, database: str | None) -> int:
        if action in ALWAYS_ALLOWED:
            return OK
        if action == sqlite3.SQLITE_READ:
            return self._read(arg1, arg2, database)
        if action in ROW_WRITES:
            return self._write(action, arg1, arg2, database)
        if action in DDL:
            return self._ddl(action, arg1, arg2, database)
        if action == sqlite3.SQLITE_PRAGMA:
            return self._pragma(arg1, arg2, database)
        if action in MAINTENANCE:
            return _answer(self._maintainer())
        return DENY  # an action code this policy does not know

    def _maintainer(self) -> bool:
        return self._grants.may(Action.QUERY_WRITE) and self._grants.may(Action.MANAGE)

    def _read(self, table: str | None, column: str | None, database: str | None) -> int:
        name = (table or "").casefold()
        if name in SCHEMA_TABLES or name == SEQUENCE_TABLE or name in TABLE_FUNCTIONS:
            return OK
        if name.startswith(STATISTICS_PREFIX) and self._maintainer():
            return OK
        if table is None:
            return DENY
        ref = _table_ref(table, database)
        if not self._grants.may(Action.QUERY, ref):
            return DENY
        if column == "":  # the table itself (count(*), EXISTS): a table the user holds no view grant in is
            return _answer(self._grants.may(Action.VIEW, ref))  # one they cannot see at all
        # Masked and hidden columns are refused, never read as NULL: a NULL would look like data.
        return _answer(self._grants.column_mode(ref, column or "") == ColumnMode.VISIBLE)

    def _write(self, action: int, table: str | None, column: str | None, database: str | None) -> int:
        name = (table or "").casefold()
        if name in SCHEMA_TABLES:
            # Only DDL gets here: SQLite refuses other writes to its catalogue (writable_schema is
            # refused by the guard), and the DDL statement is checked on its own code.
            return OK
        if name.startswith(STATISTICS_PREFIX) and self._maintainer():
            return OK
        if table is None:
            return DENY
        ref = _table_ref(table, database)
        grant = ROW_WRITES[action]
        allowed = self._grants.may(Action.QUERY_WRITE, ref) and (
            self._grants.may(grant, ref, column) if grant == Action.UPDATE else self._grants.may(grant, ref))
        return _answer(allowed)

    def _ddl(self, action: int, arg1: str | None, arg2: str | None, database: str | None) -> int:
        position, grant = DDL[action]
        table = arg1 if position == 1 else arg2
        if action == sqlite3.SQLITE_ALTER_TABLE:
            database = arg1
        if table is None:
            return DENY
        if action in (sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_TABLE) and (
                table.casefold().startswith("sqlite_")):
            # sqlite_sequence and sqlite_stat1, created by SQLite for the statement being checked;
            # SQLite refuses a user-typed CREATE of any sqlite_ name.
            return OK
        ref = _table_ref(table, database)
        allowed = self._grants.may(Action.QUERY_WRITE, ref) and self._grants.may(grant, ref)
        if action in CREATE_TRIGGER:
            # A trigger is code that will run on other users' behalf.
            allowed = allowed and self._grants.may(Action.MANAGE)
        return _answer(allowed)

    def _pragma(self, name: str | None, argument: str | None, database: str | None) -> int:
        # The guard has let through only pragmas that read.
        if (name or "").lower() in PRAGMAS_ABOUT_A_TABLE and argument:
            return _answer(self._grants.may(Action.QUERY, _table_ref(argument, database)))
        return _answer(self._grants.may(Action.MANAGE))


def _table_ref(name: str, database: str | None) -> TableRef:
    """SQLite's database name as a TableRef schema: main is the default schema.

    An unqualified table read without a column comes with no database; it is taken as
    main's. A temporary table of that name would win in SQLite, but it can only have been
    created during this run, by this user, under their own grants.
    """
    return TableRef(None if database in (None, "main") else database, name)


def _answer(allowed: bool) -> int:
    return OK if allowed else DENY
