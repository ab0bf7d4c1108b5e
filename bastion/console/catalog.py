"""What the statement analysis needs to know about a target database, read through the reflection cache."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from bastion.connections import reflection
from bastion.connections.models import Connection
from bastion.console.analysis import DIALECTS, TableEntry
from bastion.console.refs import TableRef

# Engines that compare unquoted and quoted table names without regard to case (MySQL: on most setups).
CASE_INSENSITIVE = frozenset({"sqlite", "mysql"})
SQLITE_DEFAULT = "main"


class ReflectedCatalog:
    """The analysis's Catalog for one connection: every table and view its login can see, all columns.

    Grants play no part here: the check that follows decides what the user may read.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.engine
        self._default = reflection.default_schema(connection)

    def _is_default(self, schema: str) -> bool:
        if self.dialect == "sqlite":
            return schema.casefold() == SQLITE_DEFAULT
        return self._default is not None and self._same(schema, self._default)

    def _same(self, a: str, b: str) -> bool:
        return a.casefold() == b.casefold() if self.dialect in CASE_INSENSITIVE else a == b

    def _spelled(self, name: str, known: list[str]) -> str | None:
        """The catalogue's spelling of ``name`` among ``known``, or None."""
        if name in known:
            return name
        if self.dialect in CASE_INSENSITIVE:
            return next((k for k in known if k.casefold() == name.casefold()), None)
        return None

    def _schema_key(self, schema: str | None) -> tuple[bool, str | None]:
        """(found, key): key None for the default schema whatever it is called, so grants see one spelling."""
        if schema is None or self._is_default(schema):
            return True, None
        if self.dialect == "sqlite":
            return False, None  # temp and attached databases are not browsed
        spelled = self._spelled(schema, reflection.schema_names(self.connection, include_system=True))
        return spelled is not None, spelled

    def lookup(self, schema: str | None, name: str) -> TableEntry | None:
        found, schema_key = self._schema_key(schema)
        if not found:
            return None
        spelled = self._spelled(name, reflection.table_names(self.connection, schema_key))
        view_sql = None
        if spelled is None:
            spelled = self._spelled(name, reflection.view_names(self.connection, schema_key))
            if spelled is None:
                return None
            view_sql = self._view_select(schema_key, spelled)
        columns = tuple(c["name"] for c in reflection.columns(self.connection, schema_key, spelled))
        return TableEntry(TableRef(schema_key, spelled), columns, view_sql)

    def _view_select(self, schema: str | None, view: str) -> str | None:
        """The SELECT behind ``view`` (engines that keep the whole CREATE VIEW give just its query)."""
        text = reflection.view_definition(self.connection, schema, view)
        if text is None:
            return None
        try:
            parsed = sqlglot.parse_one(text, read=DIALECTS[self.dialect])
        except sqlglot.errors.SqlglotError:
            return None
        if isinstance(parsed, exp.Create):
            query = parsed.expression
            return None if query is None else query.sql(dialect=DIALECTS[self.dialect])
        return text
