"""Finding the connection and table a request names, for the user making it.

Every explorer view starts here. A connection the user holds nothing in, a
table they may not see, a table that does not exist and a name spelled in a
way the catalogue does not know all answer the same 404, so the explorer
never confirms what exists beyond a user's grants (T02, T31).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpRequest

from bastion.access.models import ColumnMode
from bastion.access.policy import (
    Resource,
    TableAccess,
    column_modes,
    table_access,
    visible_connection_ids,
    visible_tables,
)
from bastion.connections.models import Connection
from bastion.explorer.schema import ForeignKey, TableInfo, TableNotFound, resolve_table


def table_resource(request: HttpRequest, connection_id: int, **_: Any) -> Resource:
    """The table a request is about (``?s=<schema>&t=<table>``), for permission declarations."""
    params = request.GET
    return Resource(connection_id, params.get("s") or None, params.get("t") or None)


def visible_connection(user: Any, connection_id: int) -> Connection:
    if connection_id not in visible_connection_ids(user):
        raise Http404("No such database.")
    try:
        return Connection.objects.get(pk=connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such database.") from None


@dataclass(frozen=True)
class OpenTable:
    """A table the user may see, with what they may do in it."""

    info: TableInfo
    access: TableAccess
    linkable: dict[str, ForeignKey]  # column -> foreign key whose referred table the user may open

    @property
    def connection(self) -> Connection:
        return self.info.connection


def _may_follow(user: Any, connection_id: int, fk: ForeignKey) -> bool:
    """May ``user`` open the rows ``fk`` points at? Only by columns they see in clear there: a link that
    finds a row by a masked or hidden column would confirm that column's value (T31)."""
    if not visible_tables(user, connection_id, fk.referred_schema, [fk.referred_table]):
        return False
    views = column_modes(user, connection_id, fk.referred_schema, fk.referred_table, fk.referred_columns)
    return all(view.mode == ColumnMode.VISIBLE for view in views.values())


def open_table(request: HttpRequest, connection: Connection) -> OpenTable:
    """The table ``?s=&t=`` names in ``connection`` (from visible_connection), reflected, with the user's
    access; Http404 when it is not theirs to see.

    Raises the connection's own errors (unreachable, disabled) for the caller to show.
    """
    schema = request.GET.get("s") or None
    name = request.GET.get("t") or ""
    if not visible_tables(request.user, connection.pk, schema, [name]):
        raise Http404("No such table.")
    try:
        info = resolve_table(connection, schema, name)
    except TableNotFound:
        raise Http404("No such table.") from None
    access = table_access(request.user, connection.pk, schema, name, info.column_names)
    linkable = {}
    for fk in info.foreign_keys:
        if len(fk.columns) == 1 and _may_follow(request.user, connection.pk, fk):
            linkable[fk.columns[0]] = fk
    return OpenTable(info, access, linkable)
