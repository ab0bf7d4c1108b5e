"""CSV written a column at a time (the export's fast path) is the CSV written a value at a time, and a
streamed download sizes its batches by the bytes they make (T27, T28)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from bastion.transfer import formats
from bastion.transfer.streams import RowStream


def _value_by_value(columns: list[str], batch: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow([formats.neutralise(c) for c in columns])
    writer.writerows([formats._csv_value(v) for v in row] for row in batch)
    return buffer.getvalue().encode()


BATCHES = [
    [(1, 1.5, None), (2, -0.25, None)],  # numbers and NULLs only
    [("plain", "text"), ("more", None), ("", "x")],  # text without a formula
    [("ok", "=1+1"), ("-5", "fine"), ("@SUM(A1)", "\tTab"), ("\rCR", "+x")],  # formulas in several columns
    [("line one\n=not a formula start", "a"), ("b", "c")],  # a formula sign after a line break inside a value
    [(True, b"\x00\x01"), (False, b"")],  # booleans and binary: text forms
    [(Decimal("1.50"), dt.date(2024, 2, 29)), (dt.datetime(2024, 1, 1, 12, 0), None)],
    [(1, "text"), ("=mixed", 2)],  # SQLite: one column holding text and numbers
]


def test_T27_the_column_fast_path_writes_exactly_what_value_by_value_conversion_writes():
    for batch in BATCHES:
        columns = [f"c{i}" for i in range(len(batch[0]))]
        fast = b"".join(formats.csv_chunks(columns, iter([batch])))
        assert fast == _value_by_value(columns, batch), batch
        assert b'"=' not in fast and b'"+' not in fast and b'"@' not in fast and b'"-5' not in fast


class _Stream(RowStream):
    def finished(self, elapsed_ms: float) -> None:
        pass


def test_T28_batches_shrink_for_wide_rows_and_grow_for_narrow_ones():
    stream = _Stream.__new__(_Stream)
    stream.batch_rows = 50
    assert stream._next_batch_rows(50, 50 * 1024 * 1024) == 1  # 50 rows of a megabyte: one row at a time
    assert stream._next_batch_rows(50, 50 * 100) == RowStream.max_batch_rows  # 100-byte rows: the most
    assert stream._next_batch_rows(1000, 4 * 1024 * 1024) == 250
    assert stream._next_batch_rows(0, 0) == 50
