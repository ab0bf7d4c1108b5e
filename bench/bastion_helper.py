"""The Bastion side of the benchmark set-up, run by bench.py with Bastion's own interpreter and settings.

    BASTION_DATA_DIR=... BASTION_SQLITE_ROOTS=... .venv/bin/python bench/bastion_helper.py SPEC_JSON
    .venv/bin/python bench/bastion_helper.py pg SQL_JSON

SPEC_JSON: {"admin": user name, "name": connection name, "path": SQLite file,
"cursors": {label: [key values of the last row of the previous page]}}; instead of "path",
"connection" may give the settings of any connection ({"engine": "postgresql", "host": ...}, the
fields of the Connections page), and "cursors" may be left out.

Registers the database as a connection (through the same service the Connections
page uses, so it is validated and audited like any other) unless a connection
of that name exists, and seals one "after" cursor per label with
bastion.explorer.browse.cursor_token: its key is derived from the SECRET_KEY of the
data directory, so the server accepts these tokens as its own. Prints one JSON
object: {"connection_id": int, "cursors": {label: token} or null, "cursor_error": str or null}.

`pg` (no Django): runs the bench's own fixed statements on the local PostgreSQL server
(SQL_JSON: {"conninfo": libpq string, "statements": [...], "query": a statement whose first
value is printed, or null}) and prints {"value": ...}; exit status 3 when the server cannot be reached.
"""

from __future__ import annotations

import json
import os
import sys


def postgresql(spec: dict) -> int:
    """The bench's own set-up statements (table creation, counts, clean-up) on the local test server."""
    import psycopg

    try:
        conn = psycopg.connect(spec["conninfo"], autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        print(f"cannot connect to PostgreSQL ({spec['conninfo']}): {exc}", file=sys.stderr)
        return 3
    with conn:
        for statement in spec.get("statements", []):
            conn.execute(statement)
        value = conn.execute(spec["query"]).fetchone()[0] if spec.get("query") else None
    print(json.dumps({"value": value}))
    return 0


def main() -> int:
    if sys.argv[1] == "pg":
        return postgresql(json.loads(sys.argv[2]))
    spec = json.loads(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    from bastion.connections.models import Connection
    from bastion.connections.services import create_connection

    connection = Connection.objects.filter(name=spec["name"]).first()
    if connection is None:
        admin = get_user_model().objects.get(username=spec["admin"])
        fields = spec.get("connection") or {"engine": "sqlite", "sqlite_path": spec["path"]}
        try:
            connection = create_connection(admin, None, name=spec["name"], **fields)
        except ValidationError as exc:
            print(f"Bastion refused the connection: {' '.join(exc.messages)}", file=sys.stderr)
            return 1

    cursors: dict[str, str] | None = None
    cursor_error = None
    if spec.get("cursors"):
        try:
            from bastion.explorer.browse import cursor_token
        except ImportError as exc:  # an explorer without cursors: report, do not fail the set-up
            cursor_error = f"cannot import bastion.explorer.browse.cursor_token: {exc}"
        else:
            # A cursor names the table, sort and key it was made for: "deep" pages by id, "deep_ts" by ts.
            sorts = {"deep": None, "deep_ts": "ts"}
            cursors = {label: cursor_token("after", connection.pk, None, "events", sorts[label], False, ["id"],
                                           values)
                       for label, values in spec["cursors"].items()}
    print(json.dumps({"connection_id": connection.pk, "cursors": cursors, "cursor_error": cursor_error}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
