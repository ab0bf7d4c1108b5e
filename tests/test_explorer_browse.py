"""Browsing a table: keyset pages, sort, filters and search, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from bastion.access.models import ColumnMode
from bastion.access.policy import VISIBLE, ColumnView
from bastion.explorer.browse import BrowseParams, browse
from bastion.explorer.schema import KeyKind, resolve_table
from tests.engines import target  # noqa: F401  (fixture)

NAMES = ["pear", None, "apple", "fig", "apple", None, "kiwi", "Apple", "100%_sure", "fig"]


def _fill(t, table: str = "things", rows: int = 37) -> None:
    t.run(f"CREATE TABLE {t.table(table)} (id INTEGER PRIMARY KEY, name VARCHAR(40), score INTEGER, "
          f"note VARCHAR(40) NOT NULL)")
    t.run(f"CREATE INDEX {t.q(table + '_score')} ON {t.table(table)} (score)")
    values = []
    for i in range(1, rows + 1):
        name = NAMES[i % len(NAMES)]
        score = None if i % 7 == 0 else (i * 13) % 11
        name_sql = "NULL" if name is None else "'" + name + "'"
        if t.kind != "sqlite":
            name_sql = name_sql.replace("%", "%%")  # the drivers' paramstyle
        score_sql = "NULL" if score is None else str(score)
        values.append(f"({i}, {name_sql}, {score_sql}, 'n{i}')")
    t.run(f"INSERT INTO {t.table(table)} (id, name, score, note) VALUES " + ", ".join(values))  # noqa: S608


def _views(info, **modes: ColumnView) -> dict[str, ColumnView]:
    return {c.name: modes.get(c.name, VISIBLE) for c in info.columns}


def _query(**params) -> QueryDict:
    query = QueryDict(mutable=True)
    for name, value in params.items():
        if isinstance(value, list):
            query.setlist(name, value)
        else:
            query[name] = value
    return query


def _walk(info, views, size: int = 5, **params) -> list[int]:
    """Every id, page after page forward, following the pages' own next tokens."""
    ids: list[int] = []
    after = None
    for _ in range(100):
        query = _query(size=str(size), **params, **({"after": after} if after else {}))
        page = browse(info, views, BrowseParams.from_query(query), {})
        assert not page.errors, page.errors
        ids += [int(r.cells[0].text) for r in page.rows]
        if page.is_last:
            assert page.next_after is None
            return ids
        after = page.next_after
    raise AssertionError("paging did not end")


def _walk_back(info, views, size: int = 5, **params) -> list[int]:
    """Every id, from the last page backwards, following the pages' previous tokens."""
    ids: list[int] = []
    query = _query(size=str(size), last="1", **params)
    for _ in range(100):
        page = browse(info, views, BrowseParams.from_query(query), {})
        assert not page.errors, page.errors
        ids = [int(r.cells[0].text) for r in page.rows] + ids
        if page.is_first:
            return ids
        query = _query(size=str(size), before=page.prev_before, **params)
    raise AssertionError("paging did not end")


def _native_order(t, order: str) -> list[int]:
    """The ids in the order the engine itself gives for ``ORDER BY <order>``."""
    if t.kind == "sqlite":
        import sqlite3
        with sqlite3.connect(t.sqlite_path) as raw:
            return [r[0] for r in raw.execute(f"SELECT id FROM things ORDER BY {order}")]  # noqa: S608
    with t.admin.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql(f"SELECT id FROM {t.table('things')} ORDER BY {order}")]  # noqa: S608


@pytest.mark.parametrize(("sort", "direction", "order"), [
    (None, None, "id"),
    ("name", None, "name, id"),
    ("name", "desc", "name DESC, id DESC"),
    ("score", None, "score, id"),
    ("score", "desc", "score DESC, id DESC"),
    ("note", None, "note, id"),
])
def test_keyset_pages_walk_every_row_once_in_the_engines_order(target, sort, direction, order):  # noqa: F811
    _fill(target)
    info = resolve_table(target.connection, target.schema, "things")
    assert info.key_kind == KeyKind.PRIMARY and info.key == ("id",)
    params = {k: v for k, v in (("sort", sort), ("dir", direction)) if v}
    expected = _native_order(target, order)
    assert _walk(info, _views(info), **params) == expected
    assert _walk_back(info, _views(info), **params) == expected


def test_keyset_with_filters_and_search(target):  # noqa: F811
    _fill(target)
    info = resolve_table(target.connection, target.schema, "things")
    views = _views(info)
    got = _walk(info, views, fc=["score", "name"], fo=["ge", "notnull"], fv=["5", ""], sort="score")
    rows = _native_order(target, "score, id")
    assert set(got) <= set(rows) and got
    page = browse(info, views, BrowseParams.from_query(_query(q="APPLE")), {})
    assert {r.cells[1].text.lower() for r in page.rows} == {"apple"}
    # LIKE wildcards in the search are literal characters.
    page = browse(info, views, BrowseParams.from_query(_query(q="0%_s")), {})
    assert {r.cells[1].text for r in page.rows} == {"100%_sure"}
    page = browse(info, views, BrowseParams.from_query(_query(q="_")), {})
    assert {r.cells[1].text for r in page.rows} == {"100%_sure"}
    page = browse(info, views, BrowseParams.from_query(_query(fc="id", fo="in", fv="3, 5,99")), {})
    assert [r.cells[0].text for r in page.rows] == ["3", "5"]
    page = browse(info, views, BrowseParams.from_query(_query(fc="name", fo="null")), {})
    assert all(r.cells[1].null for r in page.rows) and page.rows


def test_bad_filters_are_reported_not_run(target):  # noqa: F811
    _fill(target)
    info = resolve_table(target.connection, target.schema, "things")
    views = _views(info, note=ColumnView(ColumnMode.HIDDEN, None), name=ColumnView(ColumnMode.MASKED, "fixed"))
    page = browse(info, views, BrowseParams.from_query(_query(fc=["id", "note", "name", "nope", "id"],
                                                              fo=["eq", "eq", "eq", "eq", "bogus"],
                                                              fv=["abc", "x", "y", "z", "1"])), {})
    assert page.errors == [
        "Filter on id: Enter a whole number.",
        "There is no column named 'note'.",  # hidden: told exactly like a column that does not exist
        "name is masked for you: it cannot be used to filter.",
        "There is no column named 'nope'.",
        "Unknown filter operator 'bogus'.",
    ]
    assert [c.name for c in page.columns] == ["id", "name", "score"]  # the hidden column is not even selected
    assert all(r.cells[1].masked or r.cells[1].null for r in page.rows)
    page = browse(info, views, BrowseParams.from_query(_query(sort="name")), {})
    assert page.errors == ["name is masked for you: it cannot be used to sort."] and page.sort is None


def test_a_forged_or_foreign_cursor_falls_back_to_the_first_page(target):  # noqa: F811
    _fill(target)
    info = resolve_table(target.connection, target.schema, "things")
    page = browse(info, _views(info), BrowseParams.from_query(_query(after="not-a-token")), {})
    assert page.errors and page.is_first and page.rows[0].cells[0].text == "1"
    sorted_page = browse(info, _views(info), BrowseParams.from_query(_query(sort="score", size="25")), {})
    # A cursor made for another sort has the wrong shape: refused, not misapplied.
    page = browse(info, _views(info), BrowseParams.from_query(_query(after=sorted_page.next_after)), {})
    assert page.errors and page.is_first


def test_tables_without_a_primary_key(target):  # noqa: F811
    target.run(f"CREATE TABLE {target.table('loose')} (label VARCHAR(10), n INTEGER)")
    target.run(f"INSERT INTO {target.table('loose')} (label, n) VALUES ('a', 1), ('b', 2), ('c', 3)")  # noqa: S608
    info = resolve_table(target.connection, target.schema, "loose")
    expected_kind = {"sqlite": KeyKind.ROWID, "postgresql": KeyKind.CTID, "mysql": KeyKind.NONE}[target.kind]
    assert info.key_kind == expected_kind
    page = browse(info, _views(info), BrowseParams.from_query(_query(size="25", sort="n")), {})
    assert [r.cells[0].text for r in page.rows] == ["a", "b", "c"]
    assert (page.offset is not None) == (target.kind == "mysql")
    assert all((r.token is None) == (target.kind == "mysql") for r in page.rows)
