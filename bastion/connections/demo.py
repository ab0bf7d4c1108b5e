"""The demo database: a small shop in SQLite, so a first-time user has something real to explore.

Generated deterministically (same rows on every machine) with foreign keys,
CHECK constraints, NULLs, dates, decimals, booleans, JSON text and BLOBs.
Built in a side file and renamed into place, so an interrupted build never
leaves a half-filled database that later runs would take as done.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bastion.datadir import make_private_dir

DEMO_NAME = "Demo shop (SQLite)"
DEMO_FILE = "demo.sqlite3"
BATCH = 10_000  # orders per executemany round: bounded memory at any size

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT,
    created_at DATETIME NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    preferences JSON,  -- no json_valid() CHECK: Bastion opens files with trusted_schema=OFF
    avatar BLOB
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price DECIMAL(10, 2) NOT NULL CHECK (price >= 0),
    stock INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    ordered_at DATETIME NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    total DECIMAL(10, 2) NOT NULL CHECK (total >= 0)
);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id INTEGER NOT NULL REFERENCES products (id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price DECIMAL(10, 2) NOT NULL CHECK (unit_price >= 0)
);
CREATE VIEW customer_totals AS
    SELECT c.id AS customer_id, c.name, COUNT(o.id) AS orders, ROUND(COALESCE(SUM(o.total), 0), 2) AS spent
    FROM customers AS c LEFT JOIN orders AS o ON o.customer_id = c.id AND o.status <> 'cancelled'
    GROUP BY c.id;
"""
INDEXES = """
CREATE INDEX orders_customer_id ON orders (customer_id);
CREATE INDEX orders_ordered_at ON orders (ordered_at);
CREATE INDEX order_items_order_id ON order_items (order_id);
CREATE INDEX order_items_product_id ON order_items (product_id);
CREATE INDEX products_category ON products (category);
"""

FIRST_NAMES = ("Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
               "Radia", "Donald", "Hedy", "John", "Katherine", "Niklaus", "Sophie", "Tim", "Annie", "Guido")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
              "Dijkstra", "Perlman", "Knuth", "Lamarr", "Backus", "Johnson", "Wirth", "Wilson", "Lee", "Easley",
              "van Rossum")
CATEGORIES = {
    "Books": ("Field Guide", "Cookbook", "Novel", "Atlas", "Handbook"),
    "Coffee": ("Espresso Beans", "Filter Roast", "Decaf Blend", "Cold Brew Pack"),
    "Garden": ("Trowel", "Seed Kit", "Watering Can", "Pruner", "Planter"),
    "Kitchen": ("Chef Knife", "Cast Iron Pan", "Cutting Board", "Kettle", "Whisk"),
    "Office": ("Notebook", "Fountain Pen", "Desk Lamp", "Stapler", "Monitor Stand"),
}
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Everyday", "Heritage", "Modern", "Pocket", "Pro", "Rustic", "Travel")
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
STATUS_WEIGHTS = (5, 10, 15, 65, 5)  # percent
STATUS_TABLE = tuple(status for status, weight in zip(STATUSES, STATUS_WEIGHTS, strict=True) for _ in range(weight))
CUSTOMERS_FROM = 1_577_836_800  # 2020-01-01 UTC
ORDERS_FROM = 1_672_531_200  # 2023-01-01 UTC
THREE_YEARS = 3 * 365 * 86_400
PRODUCTS = 250


def _timestamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _customers(rng: random.Random, count: int) -> Iterator[tuple[Any, ...]]:
    for cid in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        phone = None if rng.random() < 0.15 else f"+1-555-{rng.randrange(10_000):04d}"
        preferences = None if rng.random() < 0.3 else json.dumps(
            {"newsletter": rng.random() < 0.5, "language": rng.choice(("en", "de", "fr", "es")),
             "theme": rng.choice(("light", "dark"))}, sort_keys=True)
        avatar = b"\x89PNG\r\n\x1a\n" + rng.randbytes(56) if cid % 50 == 1 else None
        email = f"{first}.{last}.{cid}@example.com".lower().replace(" ", "")
        yield (cid, f"{first} {last}", email, phone, _timestamp(CUSTOMERS_FROM + rng.randrange(THREE_YEARS)),
               int(rng.random() < 0.9), preferences, avatar)


def _products(rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    categories = sorted(CATEGORIES)
    for pid in range(1, PRODUCTS + 1):
        category = categories[pid % len(categories)]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES[category])}"
        rows.append((pid, f"SKU-{pid:05d}", name, category, rng.randrange(199, 19_999), rng.randrange(0, 500)))
    return rows


def _fill_orders(db: sqlite3.Connection, rng: random.Random, orders: int, customers: int,
                 prices: list[int]) -> None:
    # rng.random() scaled by hand: randrange/randint cost ten times more, and
    # this loop draws a few million numbers.
    rand = rng.random
    price_text = [_money(cents) for cents in prices]
    item_id = 0
    for start in range(1, orders + 1, BATCH):
        order_rows, item_rows = [], []
        for oid in range(start, min(start + BATCH, orders + 1)):
            total = 0
            for _ in range(1 + int(rand() * 4)):
                item_id += 1
                product = 1 + int(rand() * PRODUCTS)
                quantity = 1 + int(rand() * 5)
                total += prices[product] * quantity
                item_rows.append((item_id, oid, product, quantity, price_text[product]))
            order_rows.append((oid, 1 + int(rand() * customers),
                               _timestamp(ORDERS_FROM + int(rand() * THREE_YEARS)),
                               STATUS_TABLE[int(rand() * len(STATUS_TABLE))], _money(total)))
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", order_rows)
        db.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", item_rows)


def create_demo_database(path: Path, orders: int = 200_000) -> None:
    """Create the demo shop at ``path`` with ``orders`` orders; does nothing if the file exists."""
    if path.exists():
        return
    make_private_dir(path.parent)
    building = path.with_name(path.name + ".building")
    building.unlink(missing_ok=True)
    rng = random.Random(42)  # noqa: S311 - reproducible sample data, never a secret
    customers = max(20, orders // 20)
    db = sqlite3.connect(building)
    try:
        os.chmod(building, 0o600)
        # Our own throw-away file: durability while building buys nothing.
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executescript(SCHEMA)
        products = _products(rng)
        prices = [0] + [row[4] for row in products]
        with db:  # one transaction for all rows
            db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _customers(rng, customers))
            db.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)",
                           [(*row[:4], _money(row[4]), row[5]) for row in products])
            _fill_orders(db, rng, orders, customers, prices)
        db.executescript(INDEXES)
        db.execute("PRAGMA optimize")
        # Readers and one writer at a time without blocking each other; stays set in the file.
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    os.replace(building, path)


def demo_path() -> Path:
    """Where ``bastion init`` puts the demo database: the first SQLite root."""
    from bastion.connections.sqlite_guard import sqlite_roots

    return sqlite_roots()[0] / DEMO_FILE


def register_demo(*, orders: int = 200_000, actor: Any = None) -> Any:
    """Create the demo file and register it, on the first run only; returns the Connection or None.

    Later runs change nothing, so an administrator who deleted the demo connection keeps it deleted.
    """
    from bastion.connections.models import Connection
    from bastion.connections.services import create_connection

    path = demo_path()
    if path.exists() or Connection.objects.filter(name=DEMO_NAME).exists():
        return None
    create_demo_database(path, orders)
    return create_connection(actor, None, name=DEMO_NAME, engine="sqlite", sqlite_path=str(path))
