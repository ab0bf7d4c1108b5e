"""Row counts: server estimates where kept, bounded counts elsewhere, within a time budget, cached."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import column, insert, literal_column, select, table, text

from bastion.connections import counts, reflection
from bastion.connections.counts import RowCount, bounded_count, row_counts
from bastion.connections.engines import get_engine
from tests.engines import HOSTILE, mysql_target, postgresql_target, sqlite_target, target  # noqa: F401  (fixtures)

# n = 1..:rows. MariaDB stops recursive CTEs at max_recursive_iterations (1000): a cross join goes further.
NUMBERS = {
    "mysql": "WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < 999) "
             "SELECT a.n * 1000 + b.n + 1 AS n FROM c a, c b WHERE a.n * 1000 + b.n < :rows",
    "other": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :rows) SELECT n FROM c",
}


def fill(t, name: str, rows: int, *, extra: str = "") -> None:
    """Create ``name`` (n integer PRIMARY KEY) with ``rows`` rows, inserted in one statement."""
    t.run(f"CREATE TABLE {t.table(name)} (n integer PRIMARY KEY) {extra}")
    if rows:
        numbers = text(NUMBERS.get(t.kind, NUMBERS["other"])).bindparams(rows=rows).columns(column("n"))
        t.execute(insert(table(name, column("n"), schema=t.schema)).from_select(["n"], numbers))


def test_labels():
    assert RowCount(1234).label == "1,234"
    assert RowCount(1_234_567, approximate=True).label == "about 1,234,567"
    assert RowCount(100_000, more_than=True).label == "more than 100,000"
    assert RowCount(100_000, approximate=True, more_than=True).label == "more than 100,000"
    assert RowCount(0).label == "0"
    with pytest.raises(AttributeError):
        RowCount(1).value = 2  # frozen: safe to share


def test_bounded_count_of_any_select(target):  # noqa: F811
    fill(target, "numbers", 25)
    numbers = table("numbers", column("n"), schema=target.schema)
    with get_engine(target.connection).connect() as conn:
        everything = select(numbers.c.n)
        assert bounded_count(conn, everything, 100) == RowCount(25)
        assert bounded_count(conn, everything, 25) == RowCount(25)
        assert bounded_count(conn, everything, 24) == RowCount(24, more_than=True)
        assert bounded_count(conn, everything, 0) == RowCount(0, more_than=True)
        assert bounded_count(conn, select(numbers.c.n).where(numbers.c.n > 20), 100) == RowCount(5)
        assert bounded_count(conn, select(numbers.c.n).where(numbers.c.n > 99), 100) == RowCount(0)
        assert bounded_count(conn, select(numbers.c.n).limit(7), 100) == RowCount(7)  # its own LIMIT holds
        # Same-named columns from a join (MySQL refuses duplicate names in a derived table).
        other = numbers.alias("other")
        joined = select(numbers.c.n, other.c.n).join_from(numbers, other, numbers.c.n == other.c.n)
        assert bounded_count(conn, joined, 10) == RowCount(10, more_than=True)
        with pytest.raises(ValueError):
            bounded_count(conn, everything, -1)


def test_row_counts_of_small_tables_are_exact(target):  # noqa: F811
    fill(target, "empty", 0)
    fill(target, "three", 3)
    fill(target, "many", 2500)
    for name in HOSTILE:
        fill(target, name, 7)
    found = row_counts(target.connection, target.schema)
    assert set(found) == {"empty", "three", "many", *HOSTILE}
    assert found["empty"] == RowCount(0) and found["three"] == RowCount(3)
    assert all(found[name] == RowCount(7) for name in HOSTILE)
    many = found["many"]
    if target.kind == "sqlite" or (target.kind == "postgresql"):  # never analysed: counted
        assert many == RowCount(2500)
    else:  # InnoDB's estimate, close to the truth
        assert many.approximate and 1000 <= many.value <= 5000, many
    assert reflection.table_names(target.connection, target.schema)  # names come from reflection


def test_postgresql_uses_the_planner_estimate_once_analysed(postgresql_target):  # noqa: F811
    t = postgresql_target
    fill(t, "big", 5000)
    fill(t, "tiny", 2)
    t.run(f"ANALYZE {t.table('big')}", f"ANALYZE {t.table('tiny')}")
    t.run(f"CREATE TABLE {t.table('parts')} (n integer) PARTITION BY RANGE (n)",
          f"CREATE TABLE {t.table('parts_1')} PARTITION OF {t.table('parts')} FOR VALUES FROM (0) TO (100)",
          f"INSERT INTO {t.table('parts')} SELECT generate_series(0, 41)")
    found = row_counts(t.connection, t.schema)
    assert found["big"] == RowCount(5000, approximate=True) and found["big"].label == "about 5,000"
    assert found["tiny"] == RowCount(2)  # small estimates are counted: exact and cheap
    assert found["parts"] == RowCount(42)  # a partitioned parent has no estimate of its own
    assert found["parts_1"] == RowCount(42)


def test_mysql_engines_with_exact_row_counts_are_not_approximate(mysql_target):  # noqa: F811
    t = mysql_target
    fill(t, "aria", 1500, extra="ENGINE=Aria")
    assert row_counts(t.connection, None)["aria"] == RowCount(1500)


def test_sqlite_counts_stop_at_the_budget_with_a_lower_bound(sqlite_target, monkeypatch):  # noqa: F811
    fill(sqlite_target, "huge", 3_000_000)
    fill(sqlite_target, "small", 10)
    monkeypatch.setattr(counts, "COUNT_BUDGET", 0.05)
    started = time.monotonic()
    found = row_counts(sqlite_target.connection, None)
    elapsed = time.monotonic() - started
    assert found["small"] == RowCount(10)
    huge = found["huge"]
    assert huge.more_than and huge.value in counts.COUNT_STEPS and huge.value < 3_000_000, huge
    assert huge.label == f"more than {huge.value:,}"
    assert elapsed < 1.0, elapsed
    # With time enough the count is exact.
    monkeypatch.setattr(counts, "COUNT_BUDGET", 30)
    reflection.invalidate(sqlite_target.connection)
    assert row_counts(sqlite_target.connection, None)["huge"] == RowCount(3_000_000)
    # ...and the connection is left without a time limit.
    with get_engine(sqlite_target.connection).connect() as conn:
        rows = select(literal_column("1")).select_from(table("huge"))
        assert bounded_count(conn, rows, 10_000_000) == RowCount(3_000_000)


def test_counts_are_cached_until_invalidated(target):  # noqa: F811
    fill(target, "grows", 3)
    assert row_counts(target.connection, target.schema)["grows"] == RowCount(3)
    grows = table("grows", column("n"), schema=target.schema)
    target.execute(insert(grows).values(n=100), invalidate=False)  # a change Bastion did not make
    assert row_counts(target.connection, target.schema)["grows"] == RowCount(3)  # cached
    reflection.invalidate(target.connection)
    assert row_counts(target.connection, target.schema)["grows"] == RowCount(4)
