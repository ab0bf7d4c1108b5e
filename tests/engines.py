"""Target databases for tests: a Connection row per engine on a throw-away schema, and an admin to fill it.

Use the ``target`` fixture (parametrised over SQLite, PostgreSQL and MariaDB) or one
of ``sqlite_target``, ``postgresql_target``, ``mysql_target``; each gives a ``Target``:
- ``connection``: a saved Connection to the database;
- ``schema``: the name to pass to reflection (PostgreSQL: a fresh schema; MariaDB: None,
  the connection's own fresh database is the default schema; SQLite: None, i.e. main);
- ``run(sql)``: run DDL/DML as an administrator, outside Bastion's guards (``execute(statement)``
  for an SQLAlchemy statement with bound parameters);
- ``q(name)``: an identifier quoted for the engine, ``table(name)`` a qualified table name.
Everything is dropped afterwards. PostgreSQL and MariaDB tests skip (fail in CI) when the
server is not reachable, as DESIGN.md ("Test services") asks.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.sql import Executable

from bastion.connections import reflection
from bastion.connections.engines import dispose_engine
from bastion.connections.models import Connection
from tests.conftest import in_ci
from tests.services import reachable

PG_ADMIN = URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=5432, database="test")
MY_ADMIN = URL.create("mysql+pymysql", username="root", host="127.0.0.1", port=3306)
# Identifiers that break naive quoting, for tests to build tables and columns from.
HOSTILE = ['x"; DROP TABLE t; --', "a`b", "Zürich ü 名前", "it's"]


def need(service: str) -> None:
    """Skip (or, in CI, fail) when a test server is not reachable."""
    if not reachable(service):
        if in_ci():
            pytest.fail(f"the {service} test server is not reachable and CI is set")
        pytest.skip(f"the {service} test server is not reachable")


@dataclass
class Target:
    kind: str  # "sqlite", "postgresql" or "mysql"
    connection: Connection
    schema: str | None  # what to pass to reflection
    schema_name: str  # the actual name of that schema
    admin: Engine | None = None
    sqlite_path: Path | None = None
    _preparer: Any = field(default=None, repr=False)

    def q(self, name: str) -> str:
        return self._preparer.quote_identifier(name)

    def table(self, name: str) -> str:
        return f"{self.q(self.schema)}.{self.q(name)}" if self.schema else self.q(name)

    def run(self, *statements: str) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as raw:
                for statement in statements:
                    raw.executescript(statement)
            raw.close()
        else:
            with self.admin.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        reflection.invalidate(self.connection)

    def execute(self, statement: Executable, *, invalidate: bool = True) -> None:
        """Run one SQLAlchemy statement (bound parameters and all) as an administrator.

        ``invalidate=False`` leaves Bastion's reflection cache as it was (a change made behind its back).
        """
        engine = self.admin or create_engine(URL.create("sqlite", database=str(self.sqlite_path)))
        with engine.begin() as conn:
            conn.execute(statement)
        if engine is not self.admin:
            engine.dispose()
        if invalidate:
            reflection.invalidate(self.connection)


def _sqlite(tmp_path: Path, settings: Any) -> Iterator[Target]:
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "target.sqlite3"
    sqlite3.connect(path).close()
    connection = Connection.objects.create(name="sqlite target", engine="sqlite", sqlite_path=str(path))
    engine = create_engine("sqlite://")
    yield Target("sqlite", connection, None, "main", sqlite_path=path, _preparer=engine.dialect.identifier_preparer)
    dispose_engine(connection)


def _postgresql(settings: Any) -> Iterator[Target]:
    need("postgresql")
    settings.TARGET_HOSTS_ALLOWED = []
    schema = f"bt_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN)
    preparer = admin.dialect.identifier_preparer
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {preparer.quote_identifier(schema)}")
    connection = Connection.objects.create(name="postgresql target", engine="postgresql", host="127.0.0.1",
                                           port=5432, database="test", username="postgres", tls_mode="disable")
    try:
        yield Target("postgresql", connection, schema, schema, admin=admin, _preparer=preparer)
    finally:
        dispose_engine(connection)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {preparer.quote_identifier(schema)} CASCADE")
        admin.dispose()


def _mysql(settings: Any) -> Iterator[Target]:
    need("mariadb")
    settings.TARGET_HOSTS_ALLOWED = []
    database = f"bt_{uuid.uuid4().hex[:10]}"
    server = create_engine(MY_ADMIN)
    preparer = server.dialect.identifier_preparer
    with server.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {preparer.quote_identifier(database)} CHARACTER SET utf8mb4")
    admin = create_engine(MY_ADMIN.set(database=database))
    connection = Connection.objects.create(name="mysql target", engine="mysql", host="127.0.0.1", port=3306,
                                           database=database, username="root", tls_mode="disable")
    try:
        yield Target("mysql", connection, None, database, admin=admin, _preparer=preparer)
    finally:
        dispose_engine(connection)
        admin.dispose()
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {preparer.quote_identifier(database)}")
        server.dispose()


ENGINES = ["sqlite", "postgresql", "mysql"]


@pytest.fixture(params=ENGINES)
def target(request: pytest.FixtureRequest, db: None, tmp_path: Path, settings: Any) -> Iterator[Target]:
    """A fresh, empty schema on each engine in turn."""
    if request.param == "sqlite":
        yield from _sqlite(tmp_path, settings)
    elif request.param == "postgresql":
        yield from _postgresql(settings)
    else:
        yield from _mysql(settings)


@pytest.fixture
def sqlite_target(db: None, tmp_path: Path, settings: Any) -> Iterator[Target]:
    yield from _sqlite(tmp_path, settings)


@pytest.fixture
def postgresql_target(db: None, settings: Any) -> Iterator[Target]:
    yield from _postgresql(settings)


@pytest.fixture
def mysql_target(db: None, settings: Any) -> Iterator[Target]:
    yield from _mysql(settings)
