"""Row and page tokens (opaque, typed, tamper-proof) and the parsing of typed input."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.access.models import ColumnMode, MaskRule
from bastion.access.policy import VISIBLE, ColumnView
from bastion.explorer import tokens
from bastion.explorer.schema import ColumnInfo
from bastion.explorer.values import InvalidValue, cell, parse, to_driver

DB_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.binary(max_size=64),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, allow_infinity=False),
    st.dates(), st.times(), st.datetimes(timezones=st.none() | st.just(dt.UTC)), st.uuids(),
    st.timedeltas(),
)


@given(st.lists(DB_VALUES, max_size=5))
def test_tokens_give_back_exactly_the_values_and_types(values):
    token = tokens.seal("after", values)
    back = tokens.unseal("after", token)
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]


def test_tokens_are_opaque_and_bound_to_their_purpose():
    token = tokens.seal("row", [["card"], ["4111111111111111"]])
    assert "4111" not in token and "card" not in token
    with pytest.raises(tokens.BadToken):
        tokens.unseal("after", token)
    with pytest.raises(tokens.BadToken):
        tokens.unseal("row", token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    with pytest.raises(tokens.BadToken):
        tokens.unseal("row", "not a token at all")


def _column(kind: str, **extra) -> ColumnInfo:
    return ColumnInfo(name="c", type=kind.upper(), kind=kind, nullable=True, default=None, primary_key=False,
                      autoincrement=False, **extra)


@pytest.mark.parametrize(("kind", "text", "value"), [
    ("integer", " 42 ", 42), ("integer", "-9223372036854775809", -9223372036854775809),
    ("decimal", "12.50", decimal.Decimal("12.50")), ("float", "1e-3", 0.001),
    ("boolean", "Yes", True), ("boolean", "0", False), ("date", "2024-02-29", dt.date(2024, 2, 29)),
    ("time", "13:05:09", dt.time(13, 5, 9)), ("json", '{"a": [1]}', '{"a": [1]}'),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000", uuid.UUID("123e4567-e89b-12d3-a456-426614174000")),
    ("text", " spaced ", " spaced "), ("other", "10.0.0.0/8", "10.0.0.0/8"),
])
def test_parse_gives_typed_values(kind, text, value):
    assert parse(text, _column(kind)) == value


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("integer", "12a", "whole number"), ("integer", "1; DROP TABLE t", "whole number"),
    ("decimal", "NaN", "finite"), ("float", "abc", "number"), ("boolean", "maybe", "true or false"),
    ("date", "2024-02-30", "YYYY-MM-DD"), ("json", "{", "not valid JSON"), ("uuid", "x", "UUID"),
    ("datetime", "yesterday", "YYYY-MM-DD HH:MM"),
])
def test_parse_refuses_with_a_plain_message(kind, text, message):
    with pytest.raises(InvalidValue, match=message):
        parse(text, _column(kind))


def test_choices_and_time_zones():
    with pytest.raises(InvalidValue, match="Choose one of: a, b"):
        parse("c", _column("text", choices=("a", "b")))
    aware = parse("2024-01-02 03:04:05", _column("datetime", timezone=True))
    assert aware.tzinfo == dt.UTC
    assert parse("2024-01-02 03:04:05+02:00", _column("datetime", timezone=True)).utcoffset() == dt.timedelta(hours=2)
    assert to_driver(dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), "sqlite") == "2024-01-02 03:04:00+00:00"
    assert to_driver(dt.datetime(2024, 1, 2, 5, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))), "mysql") == \
        dt.datetime(2024, 1, 2, 3, 4)


def test_cells_keep_null_empty_masked_and_binary_apart():
    assert cell(None, VISIBLE).null
    assert cell("", VISIBLE).text == "" and not cell("", VISIBLE).null
    masked = cell("4111111111111234", ColumnView(ColumnMode.MASKED, MaskRule.LAST4))
    assert masked.masked and masked.text == "****1234"
    assert cell(b"\x00" * 10, VISIBLE).binary_size == 10
    long = cell("x" * 500, VISIBLE)
    assert long.truncated and len(long.text) == 200 and long.length == 500


@given(st.lists(DB_VALUES, max_size=3))
def test_tokens_need_no_quoting_in_a_url(values):
    token = tokens.seal("row", values)
    assert set(token) <= tokens.URL_SAFE
