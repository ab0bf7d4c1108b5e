"""Names of new tables and columns: what each engine accepts, checked before any DDL is built (T02).

Names are never written into SQL by Bastion: SQLAlchemy quotes every one with the
dialect's identifier preparer (``quote=True``). These rules only refuse, with a
clear message, names the engine would reject or silently change (PostgreSQL cuts
names longer than 63 bytes), so that nothing runs with a name the user did not ask for.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARACTERS = 1024  # a bound for the forms; SQLite has no limit of its own worth the name
POSTGRESQL_MAX_BYTES = 63  # NAMEDATALEN - 1
MYSQL_MAX_CHARACTERS = 64
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def name_problem(name: str, dialect: str, *, table: bool) -> str | None:
    """Why ``name`` cannot name a new table (``table``) or column on ``dialect``; None when it can."""
    if not name:
        return "A name is required."
    if any(unicodedata.category(char) == "Cc" for char in name):
        # Line breaks break more than quoting: SQLAlchemy's MySQL reflection silently drops such a column,
        # and what reflection cannot see, column grants cannot restrict (T31).
        return "Names cannot contain control characters (line breaks, tabs, NUL and the like)."
    if len(name) > MAX_NAME_CHARACTERS:
        return f"Names are at most {MAX_NAME_CHARACTERS} characters long here."
    if dialect == "postgresql":
        size = len(name.encode("utf-8"))
        if size > POSTGRESQL_MAX_BYTES:
            return (f"PostgreSQL names are at most {POSTGRESQL_MAX_BYTES} bytes in UTF-8 (longer ones are cut "
                    f"short); this one has {size}.")
    elif dialect == "mysql":
        if len(name) > MYSQL_MAX_CHARACTERS:
            return f"MySQL and MariaDB names are at most {MYSQL_MAX_CHARACTERS} characters; this one has {len(name)}."
        if name.endswith(" "):
            return "MySQL and MariaDB names cannot end with a space."
        if any(ord(char) > 0xFFFF for char in name):
            return ("MySQL and MariaDB names cannot hold characters outside Unicode's Basic Multilingual Plane "
                    "(emoji and other 4-byte characters).")
    elif dialect == "sqlite" and table and name.translate(_ASCII_LOWER).startswith("sqlite_"):
        return "SQLite keeps names that begin with “sqlite_” for itself."
    return None


def column_key(name: str, dialect: str) -> str:
    """What ``name`` is compared by among one table's columns: two names with the same key clash."""
    if dialect == "postgresql":
        return name  # quoted names are exact
    if dialect == "sqlite":
        return name.translate(_ASCII_LOWER)  # SQLite folds ASCII letters only
    return name.casefold()  # MySQL and MariaDB compare column names without case


def table_key(name: str, dialect: str) -> str:
    """What ``name`` is compared by among a schema's tables and views."""
    if dialect == "sqlite":
        return name.translate(_ASCII_LOWER)
    # PostgreSQL: exact. MySQL: exact with lower_case_table_names=0 (the Linux default); on a server that
    # folds table names the engine refuses the clash itself, and that refusal is reported like this one.
    return name
