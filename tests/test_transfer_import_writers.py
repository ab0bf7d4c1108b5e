"""The import's lower half (issue 8): converting a batch of text per column, and writing rows per engine.

On SQLite, PostgreSQL (COPY and INSERT) and MariaDB: every conflict mode, hostile identifiers,
and a refused row named by its position (T02: values bound, identifiers quoted by the dialect).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from bastion.connections.engines import get_engine
from bastion.explorer.schema import ColumnInfo, resolve_table
from bastion.transfer import convert
from bastion.transfer.writers import CopyWriter, InsertWriter, RowRefused, writer_for
from tests.engines import HOSTILE, target  # noqa: F401

pytestmark = pytest.mark.django_db


def column(kind: str, **extra: Any) -> ColumnInfo:
    return ColumnInfo(name="c", type=kind, kind=kind, nullable=True, default=None, primary_key=False,
                      autoincrement=False, **extra)


def test_integer_batches_convert_in_one_pass_and_a_bad_cell_is_named():
    convert_ints = convert.converter(column("integer"), "postgresql", convert.Options())
    assert convert_ints(["1", "-2", "+30"]) == [1, -2, 30]
    assert convert_ints(["1", "", " 7 ", None]) == [1, None, 7, None]
    with pytest.raises(convert.CellError) as raised:
        convert_ints(["1", "2", "3.5"])
    assert raised.value.index == 2 and "whole number" in str(raised.value)


def test_typed_columns_use_the_row_forms_rules_and_messages():
    options = convert.Options()
    assert convert.converter(column("date"), "postgresql", options)(["2024-02-29", ""]) == [dt.date(2024, 2, 29),
                                                                                           None]
    assert convert.converter(column("decimal"), "sqlite", options)(["1.50"]) == ["1.50"]  # text: exact in SQLite
    assert convert.converter(column("decimal"), "postgresql", options)(["1.50"]) == [Decimal("1.50")]
    assert convert.converter(column("boolean"), "sqlite", options)(["yes", "false"]) == [1, 0]
    assert convert.converter(column("binary"), "mysql", options)(["AAH/"]) == [b"\x00\x01\xff"]
    with pytest.raises(convert.CellError, match="YYYY-MM-DD"):
        convert.converter(column("date"), "postgresql", options)(["31/12/2024"])
    with pytest.raises(convert.CellError, match="base64"):
        convert.converter(column("binary"), "mysql", options)(["not base64!"])
    with pytest.raises(convert.CellError, match="Choose one of"):
        convert.converter(column("text", choices=("a", "b")), "mysql", options)(["a", "c"])


def test_text_keeps_empty_cells_unless_asked_and_can_restore_exported_formulas():
    keep = convert.converter(column("text"), "sqlite", convert.Options(empty_as_null=False))
    assert keep(["", None, "x"]) == ["", None, "x"]
    nulls = convert.converter(column("text"), "sqlite", convert.Options(empty_as_null=True))
    assert nulls(["", "x"]) == [None, "x"]
    restore = convert.converter(column("text"), "sqlite", convert.Options(restore_formulas=True))
    assert restore(["'=1+1", "'-x", "'plain", "it's"]) == ["=1+1", "-x", "'plain", "it's"]


def test_a_batch_error_names_the_row_and_the_target_column():
    converters = [convert.converter(column("text"), "sqlite", convert.Options()),
                  convert.converter(column("integer"), "sqlite", convert.Options())]
    rows = [["a", "1", "x"], ["b", "two", "y"]]
    assert convert.convert_batch(rows[:1], converters, [2, 1]) == [("x", 1)]
    with pytest.raises(convert.BatchError) as raised:
        convert.convert_batch(rows, converters, [2, 1])
    assert (raised.value.row, raised.value.column) == (1, 1)


def _table(t: Any, name: str = "dest") -> None:
    t.run(f"CREATE TABLE {t.table(name)} (id INTEGER PRIMARY KEY, {t.q(HOSTILE[0])} VARCHAR(40), "
          f"n INTEGER NOT NULL)")


def _rows(t: Any, name: str = "dest") -> list[tuple]:
    with get_engine(t.connection).connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            f"SELECT id, {t.q(HOSTILE[0])}, n FROM {t.table(name)} ORDER BY id"))]  # noqa: S608


def _write(t: Any, rows: list[tuple], conflict: str = "fail", *, commit: bool = True, batch: int = 2) -> Any:
    info = resolve_table(t.connection, t.schema, "dest")
    with get_engine(t.connection).connect() as conn:
        conn.begin()
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        writer = writer_for(conn, info.schema, info.name, ["id", HOSTILE[0], "n"], ["id"], conflict)
        try:
            for start in range(0, len(rows), batch):
                writer.write(rows[start:start + batch])
            writer.close()
        except BaseException:
            conn.rollback()
            raise
        if commit:
            conn.commit()
        else:
            conn.rollback()
    return writer


def test_rows_are_written_with_hostile_names_and_values(target):  # noqa: F811
    _table(target)
    writer = _write(target, [(1, "x'); DROP TABLE dest; --", 1), (2, None, 2), (3, "Zürich 名前 \\ %s", 3)])
    assert isinstance(writer, CopyWriter if target.kind == "postgresql" else InsertWriter)
    assert _rows(target) == [(1, "x'); DROP TABLE dest; --", 1), (2, None, 2), (3, "Zürich 名前 \\ %s", 3)]
    assert writer.written == 3


def test_a_refused_row_is_named_by_its_position_and_nothing_stays(target):  # noqa: F811
    _table(target)
    _write(target, [(1, "kept", 1)])
    with pytest.raises(RowRefused) as raised:
        _write(target, [(10, "a", 1), (11, "b", 2), (12, "c", 3), (13, "d", None), (14, "e", 5)])
    assert raised.value.index == 3
    assert _rows(target) == [(1, "kept", 1)]


def test_a_duplicate_key_stops_fail_mode_at_its_row(target):  # noqa: F811
    _table(target)
    _write(target, [(2, "old", 2)])
    with pytest.raises(RowRefused) as raised:
        _write(target, [(1, "a", 1), (2, "b", 2), (3, "c", 3)], batch=3)
    assert raised.value.index == 1
    assert _rows(target) == [(2, "old", 2)]


def test_skip_keeps_existing_rows_and_update_overwrites_them(target):  # noqa: F811
    _table(target)
    _write(target, [(1, "old", 1), (2, "old", 2)])
    skipped = _write(target, [(1, "new", 10), (3, "new", 30)], "skip")
    assert _rows(target) == [(1, "old", 1), (2, "old", 2), (3, "new", 30)]
    assert skipped.affected == (None if target.kind == "mysql" else 1)  # MySQL counts a skipped row as found
    _write(target, [(2, "newer", 20), (4, "newer", 40)], "update")
    assert _rows(target) == [(1, "old", 1), (2, "newer", 20), (3, "new", 30), (4, "newer", 40)]


def test_a_rolled_back_import_leaves_nothing(target):  # noqa: F811
    _table(target)
    _write(target, [(1, "a", 1), (2, "b", 2), (3, "c", 3)], commit=False)
    assert _rows(target) == []


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_the_batch_fast_paths_give_what_the_cell_by_cell_rules_give(dialect):
    """Float, decimal and date batches are parsed a whole column at a time; the values (and the refusals) are
    those of explorer.values.parse + to_driver, value for value."""
    from bastion.explorer.values import InvalidValue, parse, to_driver

    batches = {
        "float": [["1.5", "-2", "1e-3", "", " 7 "], ["1_000", "nan"], ["x"]],
        "decimal": [["1.50", "-0.001", "", "12345678901234567890.5"], ["NaN"], ["Infinity"], ["1,5"]],
        "date": [["2024-02-29", "", "1815-12-10"], ["20240229"], ["2023-02-29"], [" 2024-01-01"]],
    }
    for kind, cases in batches.items():
        convert_batch = convert.converter(column(kind), dialect, convert.Options())
        for values in cases:
            expected: list[Any] = []
            failed = None
            for index, value in enumerate(values):
                try:
                    expected.append(None if not value.strip() else to_driver(parse(value, column(kind)), dialect))
                except InvalidValue:
                    failed = index
                    break
            if failed is None:
                assert repr(convert_batch(values)) == repr(expected), (kind, values)  # repr: nan == nan
            else:
                with pytest.raises(convert.CellError) as raised:
                    convert_batch(values)
                assert raised.value.index == failed, (kind, values)
