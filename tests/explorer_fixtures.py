"""Tables and users for explorer tests, on SQLite, PostgreSQL and MariaDB (see tests/engines.py).

- ``typed_table(t)``: a table ``typed`` with one column of every kind the forms know,
  written in each engine's own types, plus ``n`` (NOT NULL DEFAULT 7) and ``req`` (NOT NULL).
- ``people_table(t)``: ``people`` (id, name, qty, secret, hidden_col) with a CHECK and a UNIQUE
  constraint, and a child table ``pets`` referencing it, for constraint and permission tests.
- ``clerk(t)``: a user who views people with secret masked and hidden_col hidden; inserts and
  deletes rows; updates only name and secret (the masked one). ``viewer(t)``: view only.
- ``request_for(user)``: a request as a view would pass it to the services.
- ``browser_data(form, column=text...)``: what a browser posts for a row form, some fields changed.
- ``token(info, id)``: the row token of the row whose one-column key is ``id``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import RequestFactory
from sqlalchemy import text

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.policy import TableAccess, forget_grants, table_access
from bastion.access.roles import add_grant
from bastion.explorer.rowkeys import row_token
from bastion.explorer.schema import TableInfo, resolve_table

TYPED_DDL = {
    "sqlite": """CREATE TABLE typed (
        id INTEGER PRIMARY KEY, i INTEGER, big BIGINT, d DECIMAL(12, 2), f REAL, b BOOLEAN, da DATE,
        t TIME, dt DATETIME, s VARCHAR(20), note TEXT, j JSON,
        choice TEXT CHECK (choice IN ('red', 'green')), bin BLOB,
        n INTEGER NOT NULL DEFAULT 7, req TEXT NOT NULL)""",
    "postgresql": """CREATE TABLE {schema}.typed (
        id serial PRIMARY KEY, i integer, big bigint, d numeric(12, 2), f double precision, b boolean,
        da date, t time, dt timestamp, dtz timestamptz, s varchar(20), note text, j jsonb,
        choice text CHECK (choice IN ('red', 'green')), mood {schema}.mood, bin bytea, u uuid,
        n integer NOT NULL DEFAULT 7, req text NOT NULL)""",
    "mysql": """CREATE TABLE typed (
        id INT AUTO_INCREMENT PRIMARY KEY, i INT, big BIGINT, d DECIMAL(12, 2), f DOUBLE, b BOOLEAN,
        da DATE, t TIME, dt DATETIME, s VARCHAR(20), note TEXT, j JSON,
        choice VARCHAR(10) CHECK (choice IN ('red', 'green')), mood ENUM('happy', 'sad'), bin LONGBLOB,
        n INT NOT NULL DEFAULT 7, req TEXT NOT NULL)""",
}


def typed_table(t: Any) -> TableInfo:
    if t.kind == "postgresql":
        t.run(f"CREATE TYPE {t.q(t.schema)}.mood AS ENUM ('happy', 'sad')")
    t.run(TYPED_DDL[t.kind].format(schema=t.q(t.schema or "")))
    return table_info(t, "typed")


def people_table(t: Any) -> TableInfo:
    autoincrement = {"sqlite": "INTEGER PRIMARY KEY", "postgresql": "serial PRIMARY KEY",
                     "mysql": "INT AUTO_INCREMENT PRIMARY KEY"}[t.kind]
    t.run(f"CREATE TABLE {t.table('people')} (id {autoincrement}, name VARCHAR(40) NOT NULL, "
          f"qty INTEGER, secret VARCHAR(200), hidden_col VARCHAR(40), CONSTRAINT qty_positive CHECK (qty > 0), "
          f"CONSTRAINT people_name_unique UNIQUE (name))")
    t.run(f"CREATE TABLE {t.table('pets')} (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL, "
          f"CONSTRAINT pets_owner_fk FOREIGN KEY (owner_id) REFERENCES {t.table('people')} (id))")
    people_rows = ("('ann', 1, 'ann-secret-1234', 'hidden-ann'), ('bob', 2, 'bob-secret-5678', 'hidden-bob'), "
                   "('cid', 3, 'cid-secret-9012', 'hidden-cid')")
    t.run(f"INSERT INTO {t.table('people')} (name, qty, secret, hidden_col) VALUES {people_rows}")  # noqa: S608
    t.run(f"INSERT INTO {t.table('pets')} (id, owner_id) VALUES (1, 1)")  # noqa: S608 (a quoted identifier)
    return table_info(t, "people")


def table_info(t: Any, name: str) -> TableInfo:
    return resolve_table(t.connection, t.schema, name)


def rows(t: Any, name: str, order: str = "id") -> list[dict[str, Any]]:
    """Every row of a table, read as an administrator outside Bastion."""
    statement = f"SELECT * FROM {t.table(name)} ORDER BY {t.q(order)}"  # noqa: S608 (quoted identifiers)
    if t.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(t.sqlite_path) as raw:
            raw.row_factory = sqlite3.Row
            found = [dict(r) for r in raw.execute(statement)]
        raw.close()
        return found
    with t.admin.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(statement))]


def access_of(user: Any, info: TableInfo) -> TableAccess:
    forget_grants(user)
    return table_access(user, info.connection.pk, info.schema, info.name, info.column_names)


def _role(name: str) -> Group:
    return Group.objects.create(name=name)


def _user(username: str, *roles: Group) -> Any:
    user = get_user_model().objects.create_user(username=username, password=None)
    user.groups.add(*roles)
    return user


def granted_user(t: Any, username: str, grants: list[tuple], password: str | None = None) -> Any:
    """A user in a role of their own holding ``grants`` on ``t``: (action, table, column, mode, rule) prefixes;
    an empty table is the whole connection."""
    role = _role(f"role-{username}")
    for grant in grants:
        action, table, column, mode, rule = (*grant, "", "", "", "")[:5]
        schema = (t.schema or "") if table else ""
        add_grant(None, None, role, action, t.connection, schema, table, column, mode, rule)
    user = get_user_model().objects.create_user(username=username, password=password)
    user.groups.add(role)
    return user


def clerk(t: Any, table: str = "people") -> Any:
    role = _role("clerks")
    schema = t.schema or ""

    def grant(action: Action, column: str = "", mode: str = "", rule: str = "") -> None:
        add_grant(None, None, role, action, t.connection, schema, table, column, mode, rule)

    grant(Action.VIEW)
    grant(Action.VIEW, "secret", ColumnMode.MASKED, MaskRule.LAST4)
    grant(Action.VIEW, "hidden_col", ColumnMode.HIDDEN)
    grant(Action.INSERT)
    grant(Action.DELETE)
    grant(Action.UPDATE, "name")
    grant(Action.UPDATE, "secret")  # named for update, still masked: Bastion must refuse it
    return _user("clerk", role)


def viewer(t: Any, table: str = "people") -> Any:
    role = _role("viewers")
    add_grant(None, None, role, Action.VIEW, t.connection, t.schema or "", table)
    return _user("viewer", role)


def superuser(username: str = "boss") -> Any:
    found = get_user_model().objects.filter(username=username).first()
    return found or get_user_model().objects.create_superuser(username=username, email="", password=None)


def request_for(user: Any) -> Any:
    request = RequestFactory().post("/db/", REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="pytest")
    request.user = user
    return request


def token(info, id_: Any) -> str:
    return key_token(info, info.key, [id_])


def browser_data(form: forms.Form, **changed: Any) -> dict[str, Any]:
    """What a browser posts for ``form`` as rendered, with ``changed`` fields (by column name) replaced."""
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if field.disabled or isinstance(field, forms.FileField):
            continue
        if isinstance(field, forms.BooleanField):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else str(value)
    for column, value in changed.items():
        entry = next(e for e in form.entries if e.column.name == column)
        if value is None:
            data.pop(entry.name, None)
            data[entry.null_name] = "on"
        else:
            data[entry.name] = value
            data.pop(entry.null_name or "-", None)
            data.pop(entry.default_name or "-", None)
    return data


def key_token(info: TableInfo, columns: Any, values: Any) -> str:
    """A row token of ``info`` naming the row by ``columns`` = ``values`` (as links and forms carry them)."""
    return row_token(info.connection.pk, info.schema, info.name, list(columns), list(values))


def key_of(token_: str) -> list[Any]:
    """[columns, values] of the row a row token names."""
    from bastion.explorer import tokens

    payload = tokens.unseal("row", token_)
    return [payload[3], payload[4]]
