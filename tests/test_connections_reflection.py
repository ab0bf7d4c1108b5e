"""The reflection cache: plain data in the shared cache, invalidated by a counter or an edit."""

from __future__ import annotations

import json
import sqlite3
import uuid

import psycopg
import pytest
from psycopg import sql

from bastion.connections import reflection
from bastion.connections.demo import create_demo_database
from bastion.connections.engines import dispose_all
from bastion.connections.services import create_connection, update_connection
from tests.engines import HOSTILE, mysql_target, need, postgresql_target, target  # noqa: F401  (fixtures)


@pytest.fixture
def demo(db, tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "demo.sqlite3"
    create_demo_database(path, orders=30)
    yield create_connection(None, None, name="demo", engine="sqlite", sqlite_path=str(path))
    dispose_all()


def test_names_columns_and_foreign_keys_of_a_sqlite_database(demo):
    assert reflection.schema_names(demo) == ["main"]
    assert reflection.default_schema(demo) == "main"
    assert reflection.table_names(demo) == ["customers", "order_items", "orders", "products"]
    assert reflection.view_names(demo) == ["customer_totals"]
    columns = {c["name"]: c for c in reflection.columns(demo, None, "products")}
    assert list(columns) == ["id", "sku", "name", "category", "price", "stock"]
    assert columns["id"]["primary_key"] and not columns["sku"]["primary_key"]
    assert columns["price"]["type"] == "DECIMAL(10, 2)" and columns["price"]["nullable"] is False
    assert columns["stock"]["default"] == "0"
    fks = reflection.foreign_keys(demo, "main", "order_items")
    assert sorted((fk["constrained_columns"][0], fk["referred_table"]) for fk in fks) == [
        ("order_id", "orders"), ("product_id", "products")]
    assert (columns["price"]["kind"], columns["price"]["precision"], columns["price"]["scale"]) == ("decimal", 10, 2)
    status = next(c for c in reflection.columns(demo, None, "orders") if c["name"] == "status")
    assert status["choices"] == ["pending", "paid", "shipped", "delivered", "cancelled"]
    customers = {c["name"]: c for c in reflection.columns(demo, None, "customers")}
    assert customers["is_active"]["kind"] == "boolean" and customers["is_active"]["choices"] is None  # IN (0, 1)
    assert customers["avatar"]["kind"] == "binary" and customers["preferences"]["kind"] == "json"
    assert reflection.unique_keys(demo, None, "customers") == [["email"]]
    assert [(fk["table"], fk["constrained_columns"]) for fk in
            reflection.referencing_foreign_keys(demo, None, "orders")] == [("order_items", ["order_id"])]
    # Only plain data goes to the cache (it must survive any serializer).
    json.dumps([reflection.columns(demo, None, "customers"), fks])


def test_answers_are_cached_until_invalidated(demo):
    assert "audit" not in reflection.table_names(demo)
    with sqlite3.connect(demo.sqlite_path) as raw:  # a change Bastion did not make
        raw.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY)")
    assert "audit" not in reflection.table_names(demo)  # served from the cache
    reflection.invalidate(demo)
    assert "audit" in reflection.table_names(demo)


def test_keys_pointing_here_are_cached_until_invalidated(demo):
    assert [fk["table"] for fk in reflection.referencing_foreign_keys(demo, None, "products")] == ["order_items"]
    with sqlite3.connect(demo.sqlite_path) as raw:
        raw.execute("CREATE TABLE wishes (id INTEGER PRIMARY KEY, product_id INTEGER REFERENCES products)")
    assert [fk["table"] for fk in reflection.referencing_foreign_keys(demo, None, "products")] == ["order_items"]
    reflection.invalidate(demo)
    found = reflection.referencing_foreign_keys(demo, "main", "products")
    assert [(fk["table"], fk["referred_columns"]) for fk in found] == [("order_items", ["id"]), ("wishes", ["id"])]


def test_an_edit_of_the_connection_starts_afresh(demo):
    assert reflection.table_names(demo) == ["customers", "order_items", "orders", "products"]
    with sqlite3.connect(demo.sqlite_path) as raw:
        raw.execute("DROP VIEW customer_totals")
        raw.execute("DROP TABLE order_items")
    edited = update_connection(None, None, demo, name="demo shop")
    assert reflection.table_names(edited) == ["customers", "orders", "products"]


def test_odd_identifiers_make_valid_cache_keys(demo):
    with sqlite3.connect(demo.sqlite_path) as raw:
        raw.execute('CREATE TABLE "we ird\n\'name\x7f" ("col umn" TEXT)')
    reflection.invalidate(demo)
    name = "we ird\n'name\x7f"
    assert name in reflection.table_names(demo)
    assert [c["name"] for c in reflection.columns(demo, None, name)] == ["col umn"]


def test_postgresql_schemas_leave_system_schemas_out(db, settings):
    need("postgresql")
    settings.TARGET_HOSTS_ALLOWED = []
    schema = f"bt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        admin.execute(sql.SQL("CREATE TABLE {}.items (id serial PRIMARY KEY, label text NOT NULL)")
                      .format(sql.Identifier(schema)))
        try:
            conn = create_connection(None, None, name="pg", engine="postgresql", host="127.0.0.1", database="test",
                                     username="postgres", tls_mode="disable")
            names = reflection.schema_names(conn)
            assert schema in names and "public" in names and "information_schema" not in names
            assert "information_schema" in reflection.schema_names(conn, include_system=True)
            assert reflection.table_names(conn, schema) == ["items"]
            columns = reflection.columns(conn, schema, "items")
            assert [(c["name"], c["type"], c["primary_key"]) for c in columns] == [
                ("id", "INTEGER", True), ("label", "TEXT", False)]
            dispose_all()
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


# --- column kinds, sizes and choices --------------------------------------------------------------
# (column definition, expected kind) per engine; the name is the key.
KIND_COLUMNS = {
    "sqlite": {
        "i": ("INTEGER", "integer"), "bi": ("BIGINT", "integer"), "d": ("DECIMAL(10, 2)", "decimal"),
        "f": ("REAL", "float"), "b": ("BOOLEAN", "boolean"), "dt": ("DATETIME", "datetime"),
        "ts": ("TIMESTAMP", "datetime"), "da": ("DATE", "date"), "tm": ("TIME", "time"),
        "v": ("VARCHAR(20)", "text"), "tx": ("TEXT", "text"), "j": ("JSON", "json"), "bl": ("BLOB", "binary"),
        "untyped": ("", "other"),
    },
    "postgresql": {
        "i": ("integer", "integer"), "bi": ("bigint", "integer"), "sm": ("smallint", "integer"),
        "d": ("numeric(10, 2)", "decimal"), "nd": ("numeric", "decimal"), "f": ("real", "float"),
        "dp": ("double precision", "float"), "b": ("boolean", "boolean"), "dt": ("timestamp", "datetime"),
        "ts": ("timestamptz", "datetime"), "da": ("date", "date"), "tm": ("time", "time"),
        "tz": ("timetz", "time"), "v": ("varchar(20)", "text"), "c": ("char(3)", "text"), "tx": ("text", "text"),
        "j": ("json", "json"), "jb": ("jsonb", "json"), "bl": ("bytea", "binary"), "u": ("uuid", "uuid"),
        "iv": ("interval", "other"), "arr": ("integer[]", "other"), "ip": ("inet", "other"),
    },
    "mysql": {
        "i": ("int", "integer"), "bi": ("bigint", "integer"), "t1": ("tinyint(1)", "integer"),
        "d": ("decimal(10, 2)", "decimal"), "f": ("float", "float"), "dp": ("double", "float"),
        "dt": ("datetime(3)", "datetime"), "ts": ("timestamp NULL", "datetime"), "da": ("date", "date"),
        "tm": ("time", "time"), "v": ("varchar(20)", "text"), "c": ("char(3)", "text"), "tx": ("text", "text"),
        "j": ("json", "json"), "vb": ("varbinary(16)", "binary"), "bl": ("blob", "binary"), "u": ("uuid", "uuid"),
        "e": ("enum('a', 'b')", "text"), "st": ("set('p', 'q')", "text"), "y": ("year", "other"),
    },
}


def test_columns_say_what_kind_of_value_each_holds(target):  # noqa: F811
    spec = KIND_COLUMNS[target.kind]
    body = ", ".join(f"{target.q(name)} {definition}" for name, (definition, _kind) in spec.items())
    target.run(f"CREATE TABLE {target.table('kinds')} ({body})")
    columns = {c["name"]: c for c in reflection.columns(target.connection, target.schema, "kinds")}
    assert {name: c["kind"] for name, c in columns.items()} == {name: kind for name, (_d, kind) in spec.items()}
    assert (columns["d"]["precision"], columns["d"]["scale"]) == (10, 2)
    assert columns["v"]["length"] == 20 and columns["tx"]["length"] is None
    assert columns["i"]["precision"] is None and columns["i"]["length"] is None
    assert not any(c["timezone"] for name, c in columns.items() if name not in ("ts", "tz"))
    assert all(c["choices"] is None for name, c in columns.items() if name != "e")
    if target.kind == "postgresql":
        assert columns["ts"]["timezone"] and columns["tz"]["timezone"] and not columns["dt"]["timezone"]
        assert (columns["nd"]["precision"], columns["nd"]["scale"]) == (None, None)
        assert columns["c"]["length"] == 3
    if target.kind == "mysql":
        assert columns["vb"]["length"] == 16 and not columns["ts"]["timezone"]
        assert columns["e"]["choices"] == ["a", "b"] and columns["e"]["length"] is None
        assert columns["st"]["choices"] is None  # a SET value may combine several
    json.dumps(list(columns.values()))


# Check constraints that list allowed values, in each engine's syntax; c_* columns have choices.
CHOICE_TABLES = {
    "sqlite": """CREATE TABLE {t} (
        c_plain TEXT CHECK (c_plain IN ('pending', 'paid', 'it''s')),
        c_quoted TEXT CHECK ("c_quoted" in ('a','b')),
        {hostile} TEXT CHECK ({hostile} IN ('é', 'x"y')),
        c_one TEXT CHECK (c_one IN ('only')),
        c_two TEXT CHECK (c_two IN ('a', 'b', 'c')),
        n_numbers INTEGER CHECK (n_numbers IN (0, 1)),
        n_and TEXT CHECK (n_and IN ('a', 'b') AND length(n_and) > 0),
        n_or TEXT CHECK (n_or IN ('a') OR n_or IN ('b')),
        n_other TEXT, CHECK (c_plain IN ('x')), CHECK (n_other >= 'a'), CHECK (c_two IN ('b', 'c', 'd')))""",
    "postgresql": """CREATE TABLE {t} (
        c_plain varchar(10) CHECK (c_plain IN ('pending', 'paid', 'it''s')),
        c_quoted text CHECK ("c_quoted" in ('a','b')),
        {hostile} text CHECK ({hostile} IN ('é', 'x"y')),
        c_one text CHECK (c_one IN ('only')),
        c_two char(1) CHECK (c_two IN ('a', 'b', 'c')),
        c_enum {enum},
        n_numbers integer CHECK (n_numbers IN (0, 1)),
        n_and text CHECK (n_and IN ('a', 'b') AND length(n_and) > 0),
        n_or text CHECK (n_or IN ('a') OR n_or IN ('b')),
        n_other text CHECK (n_other >= 'a'), CHECK (c_two IN ('b', 'c', 'd')))""",
    "mysql": """CREATE TABLE {t} (
        c_plain varchar(10) CHECK (c_plain IN ('pending', 'paid', 'it''s')),
        c_quoted text CHECK (`c_quoted` in ('a','b')),
        {hostile} text CHECK ({hostile} IN ('é', 'x"y', 'back\\\\slash')),
        c_one text CHECK (c_one IN ('only')),
        c_two char(1) CHECK (c_two IN ('a', 'b', 'c')),
        c_enum enum('sad', 'o''k', 'x`y'),
        n_numbers integer CHECK (n_numbers IN (0, 1)),
        n_and text CHECK (n_and IN ('a', 'b') AND length(n_and) > 0),
        n_or text CHECK (n_or IN ('a') OR n_or IN ('b')),
        n_other text CHECK (n_other >= 'a'), CHECK (c_two IN ('b', 'c', 'd')))""",
}


def test_choices_come_from_enum_types_and_in_list_checks(target):  # noqa: F811
    hostile = 'x"; DROP TABLE t; --'
    statements = []
    enum = ""
    if target.kind == "postgresql":
        enum = f"{target.table('mood')}"
        statements.append(f"CREATE TYPE {enum} AS ENUM ('sad', 'o''k', 'x`y')")
    statements.append(CHOICE_TABLES[target.kind].format(t=target.table("choices"), hostile=target.q(hostile),
                                                        enum=enum))
    target.run(*statements)
    columns = {c["name"]: c for c in reflection.columns(target.connection, target.schema, "choices")}
    choices = {name: c["choices"] for name, c in columns.items()}
    expected = {
        # SQLite's extra table-level CHECK (c_plain IN ('x')) leaves no value both allow.
        "c_plain": [] if target.kind == "sqlite" else ["pending", "paid", "it's"],
        "c_quoted": ["a", "b"],
        hostile: ["é", 'x"y'] + (["back\\slash"] if target.kind == "mysql" else []),
        "c_one": ["only"],
        "c_two": ["b", "c"],
        "n_numbers": None, "n_and": None, "n_or": None, "n_other": None,
    }
    if target.kind != "sqlite":
        expected["c_enum"] = ["sad", "o'k", "x`y"]
    assert choices == expected
    assert all(c["kind"] == "text" for name, c in columns.items() if name != "n_numbers")


@pytest.mark.parametrize(("clause", "column", "dialect", "expected"), [
    # the shapes each engine gives back, as seen on the test servers
    ("((c)::text = ANY ((ARRAY['a'::character varying, 'b'::character varying])::text[]))", "c", "postgresql",
     ["a", "b"]),
    ("c::text = ANY (ARRAY['a'::character varying, 'b''c'::character varying]::text[])", "c", "postgresql",
     ["a", "b'c"]),
    ("\"X y\" = ANY (ARRAY['a'::\"my type\", 'b'::\"my type\"])", "X y", "postgresql", ["a", "b"]),
    ("(\"X y\" = 'a'::text)", "x y", "postgresql", None),  # quoted names keep their case in PostgreSQL
    ("`st` in ('a','b\\'c')", "st", "mysql", ["a", "b'c"]),
    ("(`st` in (_utf8mb4'a',_utf8mb4'b'))", "st", "mysql", ["a", "b"]),
    ("`a``b` = '1'", "a`b", "mysql", ["1"]),
    ("[c] IN ('a')", "C", "sqlite", ["a"]),
    ("c IN ('a', 'b') OR c IS NULL", "c", "sqlite", None),
    ("(c IN ('a')) AND (d IN ('b'))", "c", "sqlite", None),
    ("c IN ('a', 'b'", "c", "sqlite", None),
    ("other IN ('a')", "c", "sqlite", None),
    ("c IN (SELECT x FROM t)", "c", "sqlite", None),
    ("c NOT IN ('a')", "c", "sqlite", None),
    ("c IN ('a'), d IN ('b')", "c", "sqlite", None),
])
def test_check_clauses_are_read_narrowly(clause, column, dialect, expected):
    assert reflection._choices_from_checks(dialect, column, [clause]) == expected


# --- unique keys and indexes ----------------------------------------------------------------------
def test_unique_keys_are_not_null_unique_constraints_and_indexes(target):  # noqa: F811
    t = target.table("people")
    q = target.q
    text_type = "varchar(50)" if target.kind == "mysql" else "text"
    ab, xy = q("a`b"), q('x"y')
    statements = [
        f"CREATE TABLE {t} (id integer NOT NULL, email {text_type} NOT NULL UNIQUE, nick {text_type} UNIQUE, "
        f"{ab} integer NOT NULL, {xy} integer NOT NULL, code integer NOT NULL, "
        f"UNIQUE ({xy}, {ab}), PRIMARY KEY (id), UNIQUE (id))",
        f"CREATE UNIQUE INDEX {q('by code')} ON {t} (code)",
        f"CREATE UNIQUE INDEX {q('code again')} ON {t} (code)",
    ]
    if target.kind != "mysql":  # partial unique indexes identify nothing outside their WHERE
        statements.append(f"CREATE UNIQUE INDEX {q('partial')} ON {t} ({ab}) WHERE code > 0")
    target.run(*statements)
    keys = reflection.unique_keys(target.connection, target.schema, "people")
    assert keys == [["code"], ["email"], ['x"y', "a`b"]]
    json.dumps(keys)


def test_a_table_without_a_primary_key_is_identified_by_its_unique_keys(target):  # noqa: F811
    target.run(f"CREATE TABLE {target.table('loose')} (a integer NOT NULL, b integer NOT NULL, c integer, "
               f"UNIQUE (b, a), UNIQUE (c))")
    assert reflection.unique_keys(target.connection, target.schema, "loose") == [["b", "a"]]
    target.run(f"CREATE TABLE {target.table('bare')} (a integer)")
    assert reflection.unique_keys(target.connection, target.schema, "bare") == []


def test_indexes_and_the_columns_a_sort_can_use(target):  # noqa: F811
    t, q = target.table("events"), target.q
    hostile = 'x"; DROP TABLE t; --'
    text_type = "varchar(50)" if target.kind == "mysql" else "text"
    statements = [
        f"CREATE TABLE {t} (id integer PRIMARY KEY, at integer NOT NULL, kind {text_type}, "
        f"{q(hostile)} integer, {q('a`b')} integer UNIQUE, note {text_type}, late integer)",
        f"CREATE INDEX {q('by kind & at')} ON {t} (kind, at)",
        f"CREATE UNIQUE INDEX {q(hostile + ' idx')} ON {t} ({q(hostile)})",
    ]
    if target.kind == "postgresql":
        statements += [f"CREATE INDEX {q('hashed')} ON {t} USING hash (note)",
                       f"CREATE INDEX {q('partial')} ON {t} (late) WHERE late > 0",
                       f"CREATE INDEX {q('expr')} ON {t} (lower(note), at)"]
    elif target.kind == "mysql":
        statements += [f"CREATE FULLTEXT INDEX {q('words')} ON {t} (note)"]
    else:
        statements += [f"CREATE INDEX {q('partial')} ON {t} (late) WHERE late > 0"]
    target.run(*statements)
    found = {index["name"]: index for index in reflection.indexes(target.connection, target.schema, "events")}
    assert found["by kind & at"] == {"name": "by kind & at", "columns": ["kind", "at"], "unique": False}
    assert found[hostile + " idx"] == {"name": hostile + " idx", "columns": [hostile], "unique": True}
    if target.kind == "postgresql":
        assert found["expr"]["columns"] == ["at"] and found["hashed"]["columns"] == ["note"]
    leading = reflection.indexed_leading_columns(target.connection, target.schema, "events")
    # note: hash, full-text or expression-led only; late: only a partial index
    assert leading == {"id", "kind", hostile, "a`b"}
    json.dumps(reflection.indexes(target.connection, target.schema, "events"))


# --- foreign keys that point here -----------------------------------------------------------------
def test_referencing_foreign_keys_in_the_same_schema_with_hostile_names(target):  # noqa: F811
    q = target.q
    parent, child = "par`ent \"名\"", 'x"; DROP TABLE t; --'
    target.run(
        f"CREATE TABLE {target.table(parent)} (id integer PRIMARY KEY, up integer, {q('k`2')} integer NOT NULL, "
        f"UNIQUE ({q('k`2')}), "
        f"CONSTRAINT {q('up`fk')} FOREIGN KEY (up) REFERENCES {target.table(parent)} (id))",
        f"CREATE TABLE {target.table(child)} (id integer PRIMARY KEY, {q('p`id')} integer, k2 integer, "
        f"CONSTRAINT {q('to`parent')} FOREIGN KEY ({q('p`id')}) REFERENCES {target.table(parent)} (id), "
        f"CONSTRAINT {q('by k2')} FOREIGN KEY (k2) REFERENCES {target.table(parent)} ({q('k`2')}))",
        f"CREATE TABLE {target.table('unrelated')} (id integer PRIMARY KEY, c integer, "
        f"FOREIGN KEY (c) REFERENCES {target.table(child)} (id))",
    )
    found = reflection.referencing_foreign_keys(target.connection, target.schema, parent)

    def key(table: str, name: str, columns: list[str], referred: list[str]) -> dict:
        return {"schema": target.schema,  # None: the default schema
                "table": table, "name": None if target.kind == "sqlite" else name,  # SQLite keys have no name
                "constrained_columns": columns, "referred_columns": referred}

    expected = [key(parent, "up`fk", ["up"], ["id"]), key(child, "by k2", ["k2"], ["k`2"]),
                key(child, "to`parent", ["p`id"], ["id"])]
    if target.kind == "sqlite":  # unnamed: in table order, then as SQLite numbers them
        found = sorted(found, key=lambda fk: (fk["table"], fk["constrained_columns"]))
    assert found == expected
    # The table's own keys read back with the same names (SQLAlchemy's MySQL parser drops these).
    own = reflection.foreign_keys(target.connection, target.schema, child)
    assert sorted((fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) for fk in own) == [
        (["k2"], parent, ["k`2"]), (["p`id"], parent, ["id"])]
    assert all(fk["referred_schema"] == target.schema for fk in own)
    assert reflection.referencing_foreign_keys(target.connection, target.schema, "unrelated") == []
    json.dumps(found)


def test_postgresql_referencing_keys_across_schemas(postgresql_target):  # noqa: F811
    t = postgresql_target
    public_table = f"{t.schema}_pub"  # unique in public too; dropped below
    try:
        t.run(
            f"CREATE TABLE {t.table('parent')} (id integer PRIMARY KEY)",
            f"CREATE TABLE public.{t.q(public_table)} (id integer PRIMARY KEY, "
            f"p integer REFERENCES {t.table('parent')} (id))",
            f"CREATE TABLE {t.table('child')} (id integer PRIMARY KEY, "
            f"pub integer REFERENCES public.{t.q(public_table)} (id), "
            f"p integer REFERENCES {t.table('parent')} (id))",
        )
        to_parent = reflection.referencing_foreign_keys(t.connection, t.schema, "parent")
        assert [(fk["schema"], fk["table"], fk["constrained_columns"]) for fk in to_parent] == [
            (t.schema, "child", ["p"]), (None, public_table, ["p"])]
        to_public = reflection.referencing_foreign_keys(t.connection, None, public_table)
        assert reflection.referencing_foreign_keys(t.connection, "public", public_table) == to_public
        assert [(fk["schema"], fk["table"], fk["name"]) for fk in to_public] == [
            (t.schema, "child", "child_pub_fkey")]
    finally:
        t.run(f"DROP TABLE IF EXISTS public.{t.q(public_table)} CASCADE")


def test_mysql_referencing_keys_across_databases(mysql_target):  # noqa: F811
    t = mysql_target
    other = f"{t.schema_name}_x"
    t.run(f"CREATE DATABASE {t.q(other)}")
    try:
        t.run(
            f"CREATE TABLE {t.q('parent')} (id integer PRIMARY KEY)",
            f"CREATE TABLE {t.q(other)}.{t.q('Child')} (id integer PRIMARY KEY, p integer, "
            f"CONSTRAINT c_fk FOREIGN KEY (p) REFERENCES {t.q(t.schema_name)}.parent (id))",
        )
        found = reflection.referencing_foreign_keys(t.connection, None, "parent")
        assert found == [{"schema": other, "table": "Child", "name": "c_fk", "constrained_columns": ["p"],
                          "referred_columns": ["id"]}]
        assert reflection.referencing_foreign_keys(t.connection, t.schema_name, "parent") == found
        assert reflection.referencing_foreign_keys(t.connection, None, "PARENT") == []
        assert reflection.foreign_keys(t.connection, other, "Child")[0]["referred_schema"] == \
            t.schema_name
    finally:
        t.run(f"DROP DATABASE {t.q(other)}")


# SQLAlchemy's MySQL parser cannot read a key line with a backtick in the referred table's name
# and warns (an error under this suite's settings); Bastion reads keys from information_schema.
@pytest.mark.filterwarnings("ignore:Unknown schema content:sqlalchemy.exc.SAWarning")
def test_hostile_table_and_column_names_on_every_function(target):  # noqa: F811
    q = target.q
    for name in HOSTILE:
        target.run(f"CREATE TABLE {target.table(name)} ({q(name)} integer PRIMARY KEY, "
                   f"{q(name + '2')} integer NOT NULL UNIQUE, {q(name + '3')} integer REFERENCES "
                   f"{target.table(name)} ({q(name)}))")
        assert name in reflection.table_names(target.connection, target.schema)
        columns = reflection.columns(target.connection, target.schema, name)
        assert [(c["name"], c["primary_key"], c["kind"]) for c in columns] == [
            (name, True, "integer"), (name + "2", False, "integer"), (name + "3", False, "integer")]
        assert reflection.unique_keys(target.connection, target.schema, name) == [[name + "2"]]
        assert reflection.indexed_leading_columns(target.connection, target.schema, name) >= {name, name + "2"}
        [fk] = reflection.referencing_foreign_keys(target.connection, target.schema, name)
        assert (fk["table"], fk["constrained_columns"], fk["referred_columns"]) == (name, [name + "3"], [name])
        [own] = reflection.foreign_keys(target.connection, target.schema, name)
        assert (own["referred_table"], own["constrained_columns"]) == (name, [name + "3"])


def test_another_process_invalidation_is_seen_within_the_local_ttl(demo, monkeypatch):
    reflection._forget_generations()  # what an earlier test left in this process's memo
    assert "audit2" not in reflection.table_names(demo)
    with sqlite3.connect(demo.sqlite_path) as raw:
        raw.execute("CREATE TABLE audit2 (id INTEGER PRIMARY KEY)")
    # Another process invalidates: only the shared counter moves, this process's memo does not know.
    from django.core.cache import cache
    cache.incr(reflection._generation_key(demo))
    assert "audit2" not in reflection.table_names(demo)  # trusted for LOCAL_TTL
    now = reflection.time.monotonic()
    monkeypatch.setattr(reflection.time, "monotonic", lambda: now + reflection.LOCAL_TTL + 1)
    assert "audit2" in reflection.table_names(demo)


def test_a_new_request_sees_another_process_invalidation_at_once(demo):
    from django.core.signals import request_started

    reflection._forget_generations()
    assert "audit3" not in reflection.table_names(demo)
    with sqlite3.connect(demo.sqlite_path) as raw:
        raw.execute("CREATE TABLE audit3 (id INTEGER PRIMARY KEY)")
    from django.core.cache import cache
    cache.incr(reflection._generation_key(demo))  # another process created it and invalidated
    request_started.send(sender=None)  # this process starts serving the next request
    assert "audit3" in reflection.table_names(demo)
