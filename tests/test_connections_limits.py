"""Statement time limits: a long statement is stopped near the limit, the connection is normal afterwards."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from bastion.connections.engines import get_engine
from bastion.connections.limits import is_timeout, statement_time_limit
from tests.engines import sqlite_target, target  # noqa: F401  (fixtures)

LIMIT = 0.5
# MariaDB's max_statement_time does not interrupt SLEEP() (it returns 1 early, without an
# error), and its recursive CTEs stop silently after max_recursive_iterations (1000 here):
# a cross join of 1000-row CTEs does the work there, about 14 million rows a second.
MARIADB_WORK = ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) "
                "SELECT count(*) FROM c a, c b, c d WHERE a.n <= :n AND b.n + d.n > 0")
SQLITE_WORK = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :n) SELECT count(*) FROM c"
# Runs for a minute or more on every engine unless stopped.
LONG = {
    "sqlite": (SQLITE_WORK, {"n": 10**9}),
    "postgresql": ("SELECT pg_sleep(60)", {}),
    "mysql": (MARIADB_WORK, {"n": 1000}),
}
# Takes about a second: completes without a limit (or under a longer one), is stopped under LIMIT.
SECOND = {
    "sqlite": (SQLITE_WORK, {"n": 3_000_000}),
    "postgresql": ("SELECT pg_sleep(1)", {}),
    "mysql": (MARIADB_WORK, {"n": 15}),
}


def settings_now(conn, kind: str):
    if kind == "postgresql":
        return conn.execute(text("SELECT current_setting('statement_timeout')")).scalar_one()
    if kind == "mysql":
        return conn.execute(text("SELECT @@SESSION.max_statement_time")).scalar_one()
    return conn.connection.dbapi_connection  # SQLite: checked by running a long statement below


def run(conn, statement: tuple[str, dict]) -> None:
    conn.execute(text(statement[0]), statement[1])


def seconds_of(conn, statement: tuple[str, dict]) -> float:
    started = time.monotonic()
    run(conn, statement)
    return time.monotonic() - started


def runs_longer_than(conn, statement: tuple[str, dict], seconds: float) -> float:
    """Run ``statement``, doubling its work (``n``) until one run lasts longer than ``seconds`` (machines differ
    in speed); how long the last run took. Each run completed: nothing stopped it."""
    sql, params = statement
    took = seconds_of(conn, (sql, params))
    for _ in range(5):
        if took > seconds or "n" not in params:
            break
        params = {**params, "n": params["n"] * 2}
        took = seconds_of(conn, (sql, params))
    return took


def test_a_long_statement_is_stopped_near_the_limit_and_the_connection_works_afterwards(target):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        before = settings_now(conn, target.kind)
        started = time.monotonic()
        with pytest.raises(sa_exc.DBAPIError) as caught, statement_time_limit(conn, LIMIT):
            run(conn, LONG[target.kind])
        elapsed = time.monotonic() - started
        assert is_timeout(caught.value) and is_timeout(caught.value.orig)
        assert LIMIT * 0.9 <= elapsed < LIMIT + 1.5, elapsed
        conn.rollback()
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
        if target.kind != "sqlite":
            assert settings_now(conn, target.kind) == before
        # The limit is gone: a statement longer than it runs to the end.
        assert runs_longer_than(conn, SECOND[target.kind], LIMIT) > LIMIT


def test_statements_within_the_limit_run_and_the_limit_is_lifted_after_a_clean_exit(target):  # noqa: F811
    with get_engine(target.connection).connect() as conn:
        before = settings_now(conn, target.kind)
        with statement_time_limit(conn, 5):
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            if target.kind == "postgresql":
                assert conn.execute(text("SELECT current_setting('statement_timeout')")).scalar_one() == "5s"
            if target.kind == "mysql":
                assert conn.execute(text("SELECT @@SESSION.max_statement_time")).scalar_one() == 5
        if target.kind != "sqlite":
            assert settings_now(conn, target.kind) == before
        conn.commit()
    # The pooled connection goes back to the pool without the limit: the next user gets it clean.
    with get_engine(target.connection).connect() as conn:
        if target.kind != "sqlite":
            assert settings_now(conn, target.kind) == before
        assert conn.connection.dbapi_connection is not None


def test_nested_limits_restore_the_outer_one(target):  # noqa: F811
    variable = {"postgresql": "SELECT current_setting('statement_timeout')",
                "mysql": "SELECT @@SESSION.max_statement_time"}
    with get_engine(target.connection).connect() as conn:
        if target.kind == "sqlite":
            started = time.monotonic()
            with statement_time_limit(conn, 2.0):
                with statement_time_limit(conn, LIMIT), pytest.raises(sa_exc.OperationalError):
                    run(conn, LONG["sqlite"])
                assert time.monotonic() - started < 1.5
                with pytest.raises(sa_exc.OperationalError) as caught:
                    run(conn, LONG["sqlite"])  # stopped by the outer deadline, not run to the end
                assert is_timeout(caught.value) and 1.8 < time.monotonic() - started < 3.5
            return
        seen = []
        with statement_time_limit(conn, 30):
            with statement_time_limit(conn, 5):
                seen.append(conn.execute(text(variable[target.kind])).scalar_one())
            seen.append(conn.execute(text(variable[target.kind])).scalar_one())
        assert seen == (["5s", "30s"] if target.kind == "postgresql" else [5, 30])


def test_a_sqlite_limit_is_a_deadline_for_the_whole_block(sqlite_target):  # noqa: F811
    with get_engine(sqlite_target.connection).connect() as conn, statement_time_limit(conn, LIMIT), \
            pytest.raises(sa_exc.OperationalError) as caught:
        for _ in range(100):  # each statement alone is short; together they pass the deadline
            conn.execute(text(SQLITE_WORK), {"n": 300_000})
    assert is_timeout(caught.value)


def test_postgresql_autocommit_connections_get_a_session_limit_put_back_afterwards(target):  # noqa: F811
    if target.kind != "postgresql":
        pytest.skip("only PostgreSQL has SET LOCAL")
    engine = get_engine(target.connection).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        before = settings_now(conn, "postgresql")
        with pytest.raises(sa_exc.DBAPIError) as caught, statement_time_limit(conn, LIMIT):
            run(conn, LONG["postgresql"])
        assert is_timeout(caught.value)
        assert settings_now(conn, "postgresql") == before


def test_other_errors_are_not_timeouts(target):  # noqa: F811
    with get_engine(target.connection).connect() as conn, pytest.raises(sa_exc.DBAPIError) as caught:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_timeout(caught.value)
    assert not is_timeout(ValueError("interrupted"))


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_a_limit_must_be_positive_and_finite(target, seconds):  # noqa: F811
    with get_engine(target.connection).connect() as conn, pytest.raises(ValueError), \
            statement_time_limit(conn, seconds):
        pass
