"""Exports where the security review (session 4) found a way to harm the person who opens the file, or the
server: now closed (T01 SQL files load as written, T27 CSV formulas, T28 connections per user, T31, odd input).
Each test's docstring tells the problem it guards against.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bastion.access.models import Action
from bastion.audit.models import Outcome
from bastion.connections import engines as bastion_engines
from bastion.transfer.formats import FORMULA_STARTS
from tests.conftest import HttpsClient
from tests.engines import postgresql_target, sqlite_target, target  # noqa: F401
from tests.explorer_fixtures import granted_user
from tests.test_transfer_export import body, download, events, export_url, exporter, people

pytestmark = pytest.mark.django_db


def plain_user(t: Any, username: str = "plain") -> Any:
    return granted_user(t, username, [(Action.VIEW, ""), (Action.EXPORT, "")])


def numbered_table(t: Any, name: str = "big", rows: int = 20_000) -> None:
    t.run(f"CREATE TABLE {t.table(name)} (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    engine = t.admin or create_engine(f"sqlite:///{t.sqlite_path}")
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {t.table(name)} (id, name) VALUES (:id, :name)"),  # noqa: S608
                     [{"id": n, "name": f"row {n}"} for n in range(1, rows + 1)])
    if engine is not t.admin:
        engine.dispose()


def cells_as_a_semicolon_locale_reads_them(raw: str) -> Iterator[str]:
    """The cells of a CSV file as a spreadsheet whose list separator is ';' (German, French ... Excel) splits
    it: on ',' or ';' outside double quotes, a quoted field being one cell."""
    for line in raw.splitlines():
        cell, quoted = "", False
        for char in line:
            if char == '"':
                quoted = not quoted
            elif char in ",;" and not quoted:
                yield cell
                cell = ""
                continue
            cell += char
        yield cell


# --- T27: CSV injection -----------------------------------------------------------------------------
def test_T27_a_formula_after_a_semicolon_is_inert_where_semicolon_separates_cells(client, target):  # noqa: F811
    """Excel in most European locales splits a .csv on ';'. An unquoted `x;=1+cmd|...` then puts a cell starting
    with '=' in the sheet (OWASP: "also take care of the field separator")."""
    t = target
    t.run(f"CREATE TABLE {t.table('notes')} (id INTEGER PRIMARY KEY, note VARCHAR(80))")
    t.execute(text(f"INSERT INTO {t.table('notes')} (id, note) VALUES (1, :v)").bindparams(  # noqa: S608
        v="x;=1+cmd|' /C calc'!A0"))
    client.force_login(plain_user(t))
    raw = body(download(client, export_url(t, "notes"), "csv"))
    live = [cell for cell in cells_as_a_semicolon_locale_reads_them(raw) if cell.startswith(FORMULA_STARTS)]
    assert not live, f"cells a ';' spreadsheet runs as formulas: {live}"


# --- T01: the SQL format must do, when loaded, only what it says -------------------------------------
def test_T01_sql_export_of_a_text_with_nul_does_not_run_the_next_row_as_sql(client, sqlite_target, tmp_path):  # noqa: F811
    """A raw NUL inside a literal: the sqlite3 shell ends the line there, the string stays open and closes on the
    next row's opening quote, so the next row's text is run as SQL (here: DROP TABLE victim)."""
    t = sqlite_target
    t.run("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    rows = [(1, "a\x00b"), (2, "); DROP TABLE victim; --")]
    with sqlite3.connect(t.sqlite_path) as raw:
        raw.executemany("INSERT INTO t (id, name) VALUES (?, ?)", rows)
    raw.close()
    client.force_login(plain_user(t))
    sql = body(download(client, export_url(t, "t"), "sql"))
    shell = shutil.which("sqlite3")
    if shell is None:  # no shell to load it with: the cause, a raw NUL in the file, is enough
        assert "\x00" not in sql
        return
    copy = tmp_path / "copy.db"
    with sqlite3.connect(copy) as raw:
        raw.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE victim (x);")
    raw.close()
    subprocess.run([shell, str(copy)], input=sql.encode(), capture_output=True, timeout=30, check=False)
    with sqlite3.connect(copy) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        loaded = raw.execute("SELECT id, name FROM t ORDER BY id").fetchall()
    raw.close()
    assert "victim" in tables, "loading the exported SQL dropped a table named in a value"
    assert loaded == rows


def test_T01_postgresql_sql_export_is_safe_to_load_whatever_standard_conforming_strings(
        client, postgresql_target):  # noqa: F811
    """Literals are written for the source server's standard_conforming_strings (on) and the file does not say so
    (pg_dump writes `SET standard_conforming_strings = on;`): loaded where it is off, `\\'` ends the string
    early and the rest of the value runs as SQL."""
    t = postgresql_target
    t.run(f"CREATE TABLE {t.table('t')} (id integer PRIMARY KEY, name text)",
          f"CREATE TABLE {t.table('victim')} (x integer)")
    value = f"\\'); DROP TABLE {t.table('victim')}; --"
    t.execute(text(f"INSERT INTO {t.table('t')} (id, name) VALUES (1, :v)").bindparams(v=value))  # noqa: S608
    client.force_login(plain_user(t))
    sql = body(download(client, export_url(t, "t"), "sql"))
    t.run(f"DELETE FROM {t.table('t')}")  # noqa: S608
    url = t.admin.url
    shell = shutil.which("psql")
    if shell is not None:  # psql, as people load .sql files, on a server configured with the setting off
        environment = {**os.environ, "PGOPTIONS": "-c standard_conforming_strings=off"}
        subprocess.run([shell, "-X", "-q", "-h", url.host, "-p", str(url.port or 5432), "-U", url.username,
                        "-d", url.database, "-f", "-"], input=sql.encode(), capture_output=True, timeout=60,
                       check=False, env=environment)
    else:
        raw = t.admin.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET standard_conforming_strings = off")
            try:
                cursor.execute(sql)  # no parameters: the file's text as it is
            except Exception:  # a refused load is fine; running the value is not
                raw.rollback()
            else:
                raw.commit()
        finally:
            raw.close()
    with t.admin.connect() as conn:
        victim = conn.execute(text("SELECT to_regclass(:name)"), {"name": t.table("victim")}).scalar()
        loaded = conn.execute(text(f"SELECT name FROM {t.table('t')}")).scalars().all()  # noqa: S608
    assert victim is not None, "loading the exported SQL dropped a table named in a value"
    assert loaded in ([], [value])


# --- T28: resource limits ---------------------------------------------------------------------------
def test_T28_one_user_cannot_take_every_pooled_connection_with_exports(client, target):  # noqa: F811
    """No limit on concurrent exports per user: ten open exports (slow readers) hold every connection of the
    pool, and everybody else's pages on that database wait POOL_TIMEOUT and then fail."""
    t = target
    numbered_table(t)
    client.force_login(plain_user(t, "hoarder"))
    other = HttpsClient()
    other.force_login(plain_user(t, "bystander"))
    held = []
    try:
        for _ in range(bastion_engines.POOL_SIZE + bastion_engines.MAX_OVERFLOW):
            response = client.post(export_url(t, "big", fc="id", fo="gt", fv="0"), {"format": "csv"})
            if not response.streaming:
                break  # refused: a per-user limit
            held.append(response)
            next(iter(response.streaming_content))
        started = time.monotonic()
        page = other.get(f"/db/{t.connection.pk}/table/?{export_url(t, 'big').split('?', 1)[1]}")
        waited = time.monotonic() - started
    finally:
        for response in held:
            response.close()
    assert page.status_code == 200 and "row 1" in page.content.decode() and waited < 5, (
        f"another user's table page waited {waited:.0f} s and got no rows while {len(held)} exports were open")


# --- T31 / T20: an export grant without a view grant ---------------------------------------------------
def test_T31_an_export_with_no_column_to_show_is_refused_with_a_message(client, target):  # noqa: F811
    """A role holding export but no view sees every column hidden: the export still runs a SELECT of no columns
    (PostgreSQL streams one empty line per row; SQLite and MariaDB answer with a database syntax error)."""
    t = target
    people(t)
    client.force_login(granted_user(t, "export-only", [(Action.EXPORT, "")]))
    response = client.post(export_url(t), {"format": "csv"})
    if response.streaming:
        rows = body(response).count("\n")
        response.close()
        pytest.fail(f"an export of no column ran and gave {rows} lines")
    assert response.status_code in (400, 403, 404)
    assert not events().filter(outcome=Outcome.SUCCESS).exists()


# --- T01: odd input ---------------------------------------------------------------------------------
def test_T01_an_out_of_range_number_in_an_export_filter_gets_a_message(client, sqlite_target):  # noqa: F811
    """An integer too large for SQLite in a filter value: OverflowError (not a DBAPIError) -> 500. Same bug on the
    table page (explorer filters), inherited by the export."""
    t = sqlite_target
    people(t)
    client.raise_request_exception = False
    client.force_login(exporter(t))
    response = client.post(export_url(t, fc="id", fo="gt", fv="9" * 30), {"format": "csv"})
    if response.streaming:
        response.close()
    assert response.status_code == 400



def test_T28_the_time_limit_stops_a_sqlite_export_and_says_so(client, sqlite_target, settings):  # noqa: F811
    """SQLite exports read the driver's cursor directly (export._sqlite_cursor): its interrupt still comes out as
    the time limit, in the audit event."""
    from sqlalchemy.exc import DBAPIError

    from bastion.audit.models import AuditEvent
    from bastion.transfer import export
    from tests.test_transfer_export import export_url, exporter

    t = sqlite_target
    t.run("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, card TEXT, secret TEXT)",
          "INSERT INTO people (id, name) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
          "WHERE i < 200000) SELECT i, 'n' || i FROM n")
    settings.EXPORT_REAUTH_ROWS = 10**9
    client.force_login(exporter(t))
    settings.EXPORT_TIMEOUT = 0.05
    with pytest.raises(DBAPIError):
        response = client.post(export_url(t, sort="name"), {"format": "csv"})  # a sort: SQLite works before row 1
        b"".join(response.streaming_content)
    event = AuditEvent.objects.get(action=export.EXPORTED)
    assert event.outcome == "failure" and event.details["message"] == "the time limit stopped the export"
