"""Names the console's parts share: a table as the console resolved it, and the grant questions asked about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bastion.access.models import Action, ColumnMode


@dataclass(frozen=True, order=True)
class TableRef:
    """A table or view of the target database, spelled as the database's catalogue spells it.

    ``schema`` is None for the connection's default schema (SQLite's "main",
    PostgreSQL's current schema, MySQL's connected database).
    """

    schema: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


class GrantOracle(Protocol):
    """One user's grants on one connection, as the console asks about them."""

    def column_mode(self, table: TableRef, column: str) -> ColumnMode:
        """How ``column`` of ``table`` is shown to the user: visible, masked or hidden."""

    def may(self, action: Action, table: TableRef | None = None, column: str | None = None) -> bool:
        """Whether the user holds ``action`` on ``table`` (None: the whole connection) or one of its columns.

        ``column`` is given only for insert and update (may the user set this column?).
        """
