"""Running per-engine trigger statements from migrations (the audit tables are append-only, T34).

Kept out of the migrations so that each of them names only its statements; MySQL is not a
metadata database, so engines without statements are skipped.
"""

from __future__ import annotations

from typing import Any

Statements = dict[str, tuple[list[str], list[str]]]  # vendor -> (forward, reverse)


def run(schema_editor: Any, statements: Statements, *, forward: bool) -> None:
    found = statements.get(schema_editor.connection.vendor)
    if found is None:
        return
    for sql in found[0 if forward else 1]:
        schema_editor.execute(sql)


def operations(statements: Statements) -> tuple[Any, Any]:
    """The (forward, reverse) callables for migrations.RunPython."""

    def create(_apps: Any, schema_editor: Any) -> None:
        run(schema_editor, statements, forward=True)

    def drop(_apps: Any, schema_editor: Any) -> None:
        run(schema_editor, statements, forward=False)

    return create, drop
