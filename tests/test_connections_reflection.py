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
from tests.conftest import in_ci
from tests.services import reachable


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
    # Only plain data goes to the cache (it must survive any serializer).
    json.dumps([reflection.columns(demo, None, "customers"), fks])


def test_answers_are_cached_until_invalidated(demo):
    assert "audit" not in reflection.table_names(demo)
    with sqlite3.connect(demo.sqlite_path) as raw:  # a change Bastion did not make
        raw.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY)")
    assert "audit" not in reflection.table_names(demo)  # served from the cache
    reflection.invalidate(demo)
    assert "audit" in reflection.table_names(demo)


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
    if not reachable("postgresql"):
        if in_ci():
            pytest.fail("the postgresql test server is not reachable and CI is set")
        pytest.skip("the postgresql test server is not reachable")
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
