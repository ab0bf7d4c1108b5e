"""The Bastion side of the benchmark set-up, run by bench.py with Bastion's own interpreter and settings.

    BASTION_DATA_DIR=... BASTION_SQLITE_ROOTS=... .venv/bin/python bench/bastion_helper.py SPEC_JSON

SPEC_JSON: {"admin": user name, "name": connection name, "path": SQLite file,
"cursors": {label: [key values of the last row of the previous page]}}.

Registers the file as a connection (through the same service the Connections
page uses, so it is validated and audited like any other) unless a connection
of that name exists, and seals one "after" cursor per label with
bastion.explorer.browse.cursor_token: its key is derived from the SECRET_KEY of the
data directory, so the server accepts these tokens as its own. Prints one JSON
object: {"connection_id": int, "cursors": {label: token} or null, "cursor_error": str or null}.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
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
        try:
            connection = create_connection(admin, None, name=spec["name"], engine="sqlite",
                                           sqlite_path=spec["path"])
        except ValidationError as exc:
            print(f"Bastion refused the connection: {' '.join(exc.messages)}", file=sys.stderr)
            return 1

    cursors: dict[str, str] | None = None
    cursor_error = None
    try:
        from bastion.explorer.browse import cursor_token
    except ImportError as exc:  # an explorer without cursors: report, do not fail the set-up
        cursor_error = f"cannot import bastion.explorer.browse.cursor_token: {exc}"
    else:
        # A cursor names the table, sort and key it was made for: "deep" pages by id, "deep_ts" by ts.
        sorts = {"deep": None, "deep_ts": "ts"}
        cursors = {label: cursor_token("after", connection.pk, None, "events", sorts[label], False, ["id"], values)
                   for label, values in spec["cursors"].items()}
    print(json.dumps({"connection_id": connection.pk, "cursors": cursors, "cursor_error": cursor_error}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
