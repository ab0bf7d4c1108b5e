"""URLs of explorer pages. Names and tokens go through QueryDict.urlencode, never string formatting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import QueryDict
from django.urls import reverse


def table_query(schema: str | None, table: str, **params: Any) -> str:
    """``s=...&t=...`` (plus ``params``) naming a table, URL-encoded."""
    query = QueryDict(mutable=True)
    if schema:
        query["s"] = schema
    query["t"] = table
    for name, value in params.items():
        if value not in (None, ""):
            query[name] = value
    return query.urlencode()


def database_url(connection_id: int, schema: str | None = None) -> str:
    url = reverse("explorer:database", args=[connection_id])
    if not schema:
        return url
    query = QueryDict(mutable=True)
    query["s"] = schema
    return f"{url}?{query.urlencode()}"


def page_url(name: str, connection_id: int, schema: str | None, table: str, **params: Any) -> str:
    """The explorer page ``name`` (table, row, row_edit, ...) of one table."""
    return f"{reverse(f'explorer:{name}', args=[connection_id])}?{table_query(schema, table, **params)}"


def filtered_table_url(connection_id: int, schema: str | None, table: str, columns: Sequence[str],
                       values: Sequence[str]) -> str:
    """The table page filtered on ``column = value`` for each pair."""
    query = QueryDict(table_query(schema, table), mutable=True)
    for name, value in zip(columns, values, strict=True):
        query.appendlist("fc", name)
        query.appendlist("fo", "eq")
        query.appendlist("fv", value)
    return f"{reverse('explorer:table', args=[connection_id])}?{query.urlencode()}"
