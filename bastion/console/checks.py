"""`bastion check` warns about target logins that can reach the server's files or programs (T21).

The console checks statements before running them and the engine runs them in
guarded transactions, but the last line is the database's own privileges: a
PostgreSQL superuser (or a member of pg_read_server_files, pg_write_server_files
or pg_execute_server_program) can read files and run programs through SQL, and
a MySQL login with the FILE or SUPER privilege can read and write server files.
Connections should log in with a role that holds only what Bastion's users need.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from bastion.connections.engines import get_engine
from bastion.connections.models import Connection

_PG_POWERS = text(
    "SELECT r.rolsuper, pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), "
    "pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'), "
    "pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER') "
    "FROM pg_roles r WHERE r.rolname = current_user")
_PG_NAMES = ("is a superuser", "can read server files", "can write server files", "can run server programs")
_MYSQL_GRANTS = text("SHOW GRANTS FOR CURRENT_USER()")
_MYSQL_GLOBAL_GRANT = re.compile(r"GRANT (.+?) ON \*\.\* TO ", re.IGNORECASE)
_MYSQL_POWERS = {"FILE": "holds the FILE privilege (reads and writes server files)",
                 "SUPER": "holds the SUPER privilege",
                 "ALL PRIVILEGES": "holds ALL PRIVILEGES on every database"}


def privilege_problems(connection: Connection) -> list[str]:
    """What the connection's login may do beyond data access, in words; empty when nothing (or SQLite)."""
    if connection.engine == "postgresql":
        with get_engine(connection).connect() as conn:
            powers = conn.execute(_PG_POWERS).one()
        return [name for name, held in zip(_PG_NAMES, powers, strict=True) if held]
    if connection.engine == "mysql":
        with get_engine(connection).connect() as conn:
            grants = [str(row[0]) for row in conn.execute(_MYSQL_GRANTS)]
        held = {p.strip().upper() for g in grants if (m := _MYSQL_GLOBAL_GRANT.match(g)) for p in m.group(1).split(",")}
        return [name for privilege, name in _MYSQL_POWERS.items() if privilege in held]
    return []


def target_privilege_warnings() -> list[str]:
    """One warning per enabled PostgreSQL/MySQL connection whose login holds server powers.

    Only `bastion check` asks (not `serve`'s start-up checks): it connects to every target, which may be
    slow or down, and a warning about a target must not keep Bastion itself from starting.
    """
    from django.db import DatabaseError

    try:
        connections = list(Connection.objects.filter(enabled=True).exclude(engine="sqlite").order_by("name"))
    except DatabaseError:
        return []  # not initialised yet: nothing registered
    warnings = []
    for connection in connections:
        try:
            found = privilege_problems(connection)
        except (SQLAlchemyError, OSError, ValueError):
            continue  # unreachable now: the connections page says so
        if found:
            warnings.append(
                f"The login of connection “{connection.name}” {', '.join(found)}: SQL run through the console "
                "could reach the database server's files or programs if Bastion's own checks ever failed. "
                "Register it with a role that holds only the data privileges your users need "
                "(README, SQL console).")
    return warnings
