"""Guessing a new table's column kinds from an imported file's first rows (issue 8, imports).

Every guess must be a kind whose parser (explorer.values.parse) accepts every value of the sample.
"""

from __future__ import annotations

import pytest

from bastion.explorer.schema import ColumnInfo
from bastion.explorer.values import InvalidValue, parse
from bastion.transfer.inference import Inferred, infer, vet_header_names


def one(values: list[str | None], **options: bool) -> Inferred:
    return infer(["c"], [[v] for v in values], **options)[0]


def parses_everything(inferred: Inferred, values: list[str | None]) -> bool:
    column = ColumnInfo(name=inferred.name, type="", kind=inferred.kind, nullable=True, default=None,
                        primary_key=False, autoincrement=False, timezone=inferred.timezone)
    for value in values:
        if value is None or (inferred.kind != "text" and not value.strip()):
            continue  # NULL
        try:
            parse(value, column)
        except InvalidValue:
            return False
    return True


CASES = [
    (["1", "-2", "+3", "0", " 42 "], "integer"),
    (["9223372036854775807", "-9223372036854775808"], "integer"),
    (["9223372036854775808"], "decimal"),  # beyond 64 bits: exact as a decimal
    (["12345678901234567890"], "decimal"),
    (["1.50", "2.25", "-0.10", ".5", "3."], "decimal"),
    (["1", "2.5"], "decimal"),
    (["0.1234567890123456789"], "float"),  # 19 digits after the point
    (["1e5", "2.5E-3", "-1e+10"], "float"),
    (["1", "2.5", "3e2"], "float"),
    (["true", "False", "YES", "no", "t", "F"], "boolean"),
    (["0", "1", "1"], "integer"),  # 0/1 are numbers, not booleans
    (["true", "1"], "text"),
    (["2024-01-31", "1999-12-01"], "date"),
    (["2024-02-30"], "text"),
    (["2024-01-31 10:00", "2024-01-31T10:00:05.123456"], "datetime"),
    (["2024-01-31", "2024-01-31 10:00:00"], "datetime"),
    (["10:30", "23:59:59", "00:00:00.5"], "time"),
    (['{"a": 1}', "[1, 2]", "[]"], "json"),
    (['{"a": 1', "[1, 2]"], "text"),
    (["007", "123"], "text"),  # leading zeros: a code, not a number
    (["00.5"], "text"),
    (["Ann", "12"], "text"),
    (["NaN", "inf"], "text"),
    (["1e999"], "text"),  # not a finite float
    (["1" * 39], "text"),
    (["$12.50"], "text"),
    (["12,50"], "text"),
]


@pytest.mark.parametrize(("values", "kind"), CASES)
def test_kind_of_a_column(values, kind):
    inferred = one(values)
    assert inferred.kind == kind
    assert parses_everything(inferred, values)


def test_integers_note_values_beyond_32_bits():
    assert one(["1", "2147483647"]).big is False
    assert one(["1", "2147483648"]).big is True
    assert one(["-2147483649"]).big is True


def test_decimal_precision_and_scale():
    inferred = one(["12345.5", "1.125", "-7"])
    assert (inferred.kind, inferred.precision, inferred.scale) == ("decimal", 8, 3)
    assert one(["1"]).precision == 0


@pytest.mark.parametrize(("values", "timezone"), [
    (["2024-01-31 10:00"], False),
    (["2024-01-31T10:00:00+02:00", "2024-01-31 10:00"], True),
    (["2024-01-31T10:00:00Z"], True),
    (["2024-01-31T10:00:00-0500"], True),
])
def test_datetime_notes_offsets(values, timezone):
    inferred = one(values)
    assert (inferred.kind, inferred.timezone) == ("datetime", timezone)
    assert parses_everything(inferred, values)


def test_empty_cells_and_nulls_make_a_column_nullable_and_do_not_vote():
    assert one(["1", "", None, "3"]) == Inferred("c", "integer", nullable=True, max_length=1)
    assert one(["1", "2"]).nullable is False
    assert one(["2024-01-01", "  "]).nullable is True  # white space in a date column is NULL
    assert one([None, None]) == Inferred("c", "text", nullable=True)
    assert one([]) == Inferred("c", "text", nullable=False)


def test_empty_text_is_a_value_when_empty_as_null_is_off():
    assert one(["a", ""], empty_as_null=True).nullable is True
    assert one(["a", ""], empty_as_null=False).nullable is False
    assert one(["a", "", None], empty_as_null=False).nullable is True
    assert one(["a", " "]).nullable is False  # white space is text
    assert one(["1", ""], empty_as_null=False).nullable is True  # an empty number is NULL whatever the option


def test_text_reports_its_longest_value():
    assert one(["short", "a longer value", "é" * 20]).max_length == 20
    assert one(["a", "12", "x" * 300]).max_length == 300


def test_several_columns_and_the_sample_limit():
    columns = ["id", "name", "price", "seen"]
    rows = [[str(i), f"name {i}", f"{i}.99", "2024-01-01"] for i in range(2000)]
    rows.append(["x", "y", "z", "w"])  # beyond the sample: not looked at
    kinds = [(i.name, i.kind) for i in infer(columns, rows, limit=2000)]
    assert kinds == [("id", "integer"), ("name", "text"), ("price", "decimal"), ("seen", "date")]
    assert infer(columns, iter(rows))[0].kind == "integer"  # an iterator, read up to the first 1000 rows


def test_rows_of_the_wrong_width_are_a_programming_error():
    with pytest.raises(ValueError):
        infer(["a", "b"], [["1"]])


def test_json_source_values():
    # What sources.open_rows makes of a JSON file: numbers as their text, objects as compact JSON, null as None.
    columns = ["n", "x", "flag", "doc"]
    rows = [["0.1", "12345678901234567890", "true", '{"a":[1,2]}'], ["2", None, "false", "[]"]]
    kinds = [i.kind for i in infer(columns, rows)]
    assert kinds == ["decimal", "decimal", "boolean", "json"]


@pytest.mark.parametrize(("names", "vetted"), [
    (["id", " name ", ""], ["id", "name", "column_3"]),
    (["a", "a", "a"], ["a", "a_2", "a_3"]),
    (["a", "A", "a_2"], ["a", "A_3", "a_2"]),  # case-insensitive (MySQL, SQLite); a_2 is taken already
    (["", "column_1"], ["column_1", "column_1_2"]),
    (["naïve name", "x-y.z", "Größe"], ["naïve name", "x-y.z", "Größe"]),
])
def test_vet_header_names(names, vetted):
    assert vet_header_names(names) == vetted
