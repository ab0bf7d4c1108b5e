"""Keeping SQLite inside its file (T22): path checks and the authorizer on every connection.

SQLite SQL can reach the filesystem: ATTACH opens or creates any file,
VACUUM INTO writes one, load_extension runs native code, and some pragmas
corrupt the schema. Bastion installs an authorizer that refuses those for
everyone, whatever their grants; a per-user policy (column and table grants,
a later concern) can be layered on top through ``policy`` but never loosens it.

How SQLite reports the operations (verified in tests/test_connections_sqlite_guard.py):
- ``VACUUM INTO 'f'`` is an SQLITE_ATTACH of ``'f'``; a plain VACUUM is an
  SQLITE_ATTACH of ``''`` (a temporary database). Both are refused: VACUUM is
  maintenance for the database owner, not for a web console.
- DDL is reported as writes to sqlite_master (CREATE TABLE inserts a row, and so
  on), so the authorizer cannot refuse those writes without refusing every
  schema change. Direct writes to sqlite_master are refused by SQLite itself
  unless ``PRAGMA writable_schema`` is on, and that pragma is refused here; the
  ``sqlite_dbpage`` table (raw page writes) is refused outright.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings

# policy(action, arg1, arg2, database, trigger_or_view) -> SQLITE_OK | SQLITE_DENY | SQLITE_IGNORE,
# the arguments of sqlite3.Connection.set_authorizer. SQLITE_IGNORE on an
# SQLITE_READ makes the column read as NULL (useful for hidden columns).
Policy = Callable[[int, str | None, str | None, str | None, str | None], int]

DENIED_FUNCTIONS = frozenset({
    "load_extension",
    "fts3_tokenizer",  # the two-argument form takes a raw pointer
    # Only in the sqlite3 shell today; refused in case a build ever links them in.
    "readfile", "writefile", "edit", "fsdir",
})
# Raw page access: writing pages corrupts the file, whatever the schema says.
DENIED_TABLES = frozenset({"sqlite_dbpage"})

# Pragmas that only read, and take an object name as their argument.
PRAGMAS_WITH_NAME = frozenset({
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "table_list",
})
# Pragmas allowed only as a query (no "= value"): reading them changes nothing.
PRAGMAS_READ_ONLY = frozenset({
    "foreign_keys", "database_list", "compile_options", "collation_list", "function_list",
    "module_list", "pragma_list", "encoding", "page_size", "page_count",
    "freelist_count", "user_version", "application_id", "schema_version", "data_version",
    "journal_mode", "query_only", "read_uncommitted", "defer_foreign_keys", "auto_vacuum",
    "busy_timeout", "cache_size", "recursive_triggers", "legacy_alter_table",
})


def _pragma_allowed(name: str | None, argument: str | None) -> bool:
    name = (name or "").lower()
    if name in PRAGMAS_WITH_NAME:
        return True
    return name in PRAGMAS_READ_ONLY and argument is None


def guard_decision(action: int, arg1: str | None, arg2: str | None) -> int | None:
    """SQLITE_DENY for what nobody may do; None when the guard has no objection."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and not _pragma_allowed(arg1, arg2):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in (sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE) and (
            (arg1 or "").lower() in DENIED_TABLES):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_CREATE_VTABLE and (arg2 or "").lower() in DENIED_TABLES:
        return sqlite3.SQLITE_DENY
    return None


def make_authorizer(policy: Policy | None = None) -> Policy:
    """The authorizer callback: the guard first, then ``policy`` (if any) for the rest."""

    def authorize(action: int, arg1: str | None, arg2: str | None, database: str | None,
                  source: str | None) -> int:
        decision = guard_decision(action, arg1, arg2)
        if decision is not None:
            return decision
        if policy is None:
            return sqlite3.SQLITE_OK
        return policy(action, arg1, arg2, database, source)

    return authorize


def install_authorizer(dbapi_connection: sqlite3.Connection, policy: Policy | None = None) -> None:
    """Guard ``dbapi_connection``: extensions off and the authorizer on (replacing any previous one)."""
    # Absent when Python was built without extension support; then it cannot be on.
    if hasattr(dbapi_connection, "enable_load_extension"):
        dbapi_connection.enable_load_extension(False)
    dbapi_connection.set_authorizer(make_authorizer(policy))


@contextlib.contextmanager
def policy_applied(dbapi_connection: sqlite3.Connection, policy: Policy) -> Iterator[None]:
    """Run a block under ``policy`` on top of the guard; the bare guard comes back afterwards.

    Pooled connections are shared by users, so a user's policy must not outlive the block.
    """
    install_authorizer(dbapi_connection, policy)
    try:
        yield
    finally:
        install_authorizer(dbapi_connection)


@contextlib.contextmanager
def foreign_keys_off(dbapi_connection: sqlite3.Connection) -> Iterator[None]:
    """Foreign keys off for a block, outside any transaction: SQLite's documented way to rebuild a table that
    other tables (or the table itself) refer to, without the DROP of the old copy running their ON DELETE rules.

    Only Bastion's own code calls this, with these fixed statements (the authorizer refuses pragma writes from
    anything else). The block must run ``PRAGMA foreign_key_check`` before it commits. Foreign keys are on
    again afterwards; a connection where that cannot be confirmed raises, and the caller must not reuse it.
    """
    _set_foreign_keys(dbapi_connection, on=False)
    try:
        yield
    finally:
        _set_foreign_keys(dbapi_connection, on=True)


def _set_foreign_keys(dbapi_connection: sqlite3.Connection, *, on: bool) -> None:
    dbapi_connection.set_authorizer(None)
    try:
        dbapi_connection.execute("PRAGMA foreign_keys = ON" if on else "PRAGMA foreign_keys = OFF")
        state = dbapi_connection.execute("PRAGMA foreign_keys").fetchone()[0]
    finally:
        install_authorizer(dbapi_connection)
    if bool(state) != on:  # inside a transaction SQLite ignores the pragma
        raise sqlite3.OperationalError("foreign keys could not be switched " + ("on" if on else "off"))


# --- registering a file -------------------------------------------------------------------
class SqlitePathRefused(Exception):
    """The path may not be registered or opened; the message says why."""


SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_roots() -> list[Path]:
    """SQLITE_ROOTS: the directories SQLite files may live in (resolved)."""
    roots = getattr(settings, "SQLITE_ROOTS", None) or [settings.DATA.root / "databases"]
    return [Path(root).resolve() for root in roots]


def check_sqlite_path(path: str | os.PathLike[str]) -> Path:
    """The real path of an existing SQLite file inside one of the SQLITE_ROOTS.

    Symlinks are resolved before the check, so a link inside a root that points
    outside is refused. A relative path is taken relative to the first root.
    """
    roots = sqlite_roots()
    raw = Path(path)
    if not str(path).strip():
        raise SqlitePathRefused("A database file path is required.")
    candidate = raw if raw.is_absolute() else roots[0] / raw
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise SqlitePathRefused(f"There is no file at {candidate}.") from None
    except (OSError, RuntimeError):
        raise SqlitePathRefused(f"{candidate} cannot be resolved (symlink loop or unreadable directory).") from None
    if not any(real.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise SqlitePathRefused(f"{real} is outside the directories allowed for SQLite databases ({allowed}).")
    if not real.is_file():
        raise SqlitePathRefused(f"{real} is not a regular file.")
    try:
        with real.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError:
        raise SqlitePathRefused(f"{real} cannot be read by Bastion.") from None
    if header and header != SQLITE_HEADER:
        raise SqlitePathRefused(f"{real} is not an SQLite database.")
    return real
