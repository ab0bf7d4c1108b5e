"""The demo database: realistic, related, constrained, and the same on every machine."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from bastion.connections.demo import DEMO_NAME, create_demo_database, register_demo
from bastion.connections.engines import build_engine, dispose_all
from bastion.connections.models import Connection

TABLES = ["customers", "order_items", "orders", "products"]


def digest(path) -> str:
    with sqlite3.connect(path) as db:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()


def test_the_demo_database_is_deterministic(tmp_path):
    create_demo_database(tmp_path / "a.sqlite3", orders=300)
    create_demo_database(tmp_path / "b.sqlite3", orders=300)
    assert digest(tmp_path / "a.sqlite3") == digest(tmp_path / "b.sqlite3")
    with sqlite3.connect(tmp_path / "a.sqlite3") as db:
        counts = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608
        assert counts["customers"] == 20 and counts["products"] == 250 and counts["orders"] == 300
        assert 300 <= counts["order_items"] <= 1200
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%_id'").fetchone()[0]


def test_the_demo_data_has_nulls_dates_decimals_booleans_json_and_blobs(tmp_path):
    path = tmp_path / "demo.sqlite3"
    create_demo_database(path, orders=2000)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM customers WHERE phone IS NULL").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(*) FROM customers WHERE avatar IS NOT NULL").fetchone()[0] > 0
        assert db.execute("SELECT COUNT(DISTINCT is_active) FROM customers").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM customers WHERE json_valid(preferences)").fetchone()[0] > 0
        assert db.execute("SELECT MIN(ordered_at) >= '2023-01-01' FROM orders").fetchone()[0] == 1
        mismatched = db.execute("""
            SELECT COUNT(*) FROM orders AS o
            WHERE ABS(o.total - (SELECT SUM(quantity * unit_price) FROM order_items WHERE order_id = o.id)) > 0.005
        """).fetchone()[0]
        assert mismatched == 0


def test_constraints_are_enforced_through_bastion_engines(db, tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path]
    path = tmp_path / "demo.sqlite3"
    create_demo_database(path, orders=50)
    engine = build_engine(Connection(name="demo", engine="sqlite", sqlite_path=str(path)))
    with engine.connect() as conn:
        with pytest.raises(sa_exc.IntegrityError, match="FOREIGN KEY"):
            conn.execute(text("INSERT INTO order_items (order_id, product_id, quantity, unit_price) "
                              "VALUES (999999, 1, 1, 1.00)"))
        with pytest.raises(sa_exc.IntegrityError, match="CHECK"):
            conn.execute(text("UPDATE orders SET status = 'lost' WHERE id = 1"))
        with pytest.raises(sa_exc.IntegrityError, match="FOREIGN KEY"):
            conn.execute(text("DELETE FROM customers WHERE id IN (SELECT customer_id FROM orders)"))
    engine.dispose()


def test_an_existing_file_is_left_alone(tmp_path):
    path = tmp_path / "demo.sqlite3"
    create_demo_database(path, orders=40)
    before = digest(path)
    create_demo_database(path, orders=80)
    assert digest(path) == before
    assert not (tmp_path / "demo.sqlite3.building").exists()


def test_register_demo_registers_once(db, tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path / "databases"]
    connection = register_demo(orders=30)
    assert connection.name == DEMO_NAME and connection.sqlite_path == str(tmp_path / "databases" / "demo.sqlite3")
    assert (tmp_path / "databases").stat().st_mode & 0o777 == 0o700
    connection.delete()
    assert register_demo(orders=30) is None  # a deleted demo stays deleted
    assert not Connection.objects.exists()
    dispose_all()
