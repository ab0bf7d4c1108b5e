"""Row tokens: which row of which table a link, a checkbox or a form is about.

A token names its connection, schema and table as well as the key, so it is
refused anywhere else: a token made on one table must not find rows in another
(that would turn a visible key into an oracle on a masked or hidden one, T31).
Tokens of rows shown on a table page also carry a digest of the row as shown, so
a bulk delete of a stale selection cannot remove a row that has changed or whose
rowid was reused since (T38).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView
from bastion.explorer import tokens
from bastion.explorer.schema import ColumnInfo, TableInfo
from bastion.explorer.values import Preview, preview_of

PURPOSE = "row"


@dataclass(frozen=True)
class RowKey:
    columns: list[str]
    values: list[Any]
    digest: str | None  # of the row as a table page showed it; None when the token did not come from one


def row_token(connection_id: int, schema: str | None, table: str, columns: Sequence[str], values: Sequence[Any],
              digest: str | None = None) -> str:
    """A token for the row of ``schema.table`` whose ``columns`` hold ``values``."""
    return tokens.seal(PURPOSE, [connection_id, schema, table, list(columns), list(values), digest])


def own_row_token(info: TableInfo, key_values: Sequence[Any], digest: str | None = None) -> str:
    """A token for a row of ``info`` by its row identity."""
    return row_token(info.connection.pk, info.schema, info.name, info.key, key_values, digest)


def row_digest(values: Mapping[str, Any], columns: Sequence[ColumnInfo]) -> str:
    """A digest of a row's ``columns`` (the ones a user sees, masked included), order as given.

    Text and binary values count by their preview (start and length), which is what a table page
    reads of them; full values and previews of the same row give the same digest.
    """
    forms = []
    for column in columns:
        value = preview_of(values.get(column.name), column)
        forms.append(["preview", value.prefix, value.length] if isinstance(value, Preview) else tokens.tag_value(value))
    text = json.dumps(forms, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def read_row_token(info: TableInfo, views: Mapping[str, ColumnView], token: str) -> RowKey | None:
    """The row key a token names in ``info``; None when the token is bad, made for another table, or names
    the row by a unique key the user does not see in clear."""
    try:
        payload = tokens.unseal(PURPOSE, token)
    except tokens.BadToken:
        return None
    if not isinstance(payload, list) or len(payload) != 6:
        return None
    connection_id, schema, table, columns, values, digest = payload
    if (connection_id, schema, table) != (info.connection.pk, info.schema, info.name):
        return None
    if not isinstance(columns, list) or not isinstance(values, list) or not columns \
            or len(columns) != len(values) or not all(isinstance(c, str) for c in columns):
        return None
    # Another key of the table (a foreign key's target) only when the user sees all of it in clear.
    if columns != list(info.key) and (not info.identifies(columns) or any(
            views.get(c) is None or views[c].mode != ColumnMode.VISIBLE for c in columns)):
        return None
    return RowKey(columns, values, digest if isinstance(digest, str) else None)
