"""Guessing a new table's columns from the first rows of an imported file.

The kinds are the explorer's (explorer.values): every value of the sample parses with
``values.parse`` in the kind guessed for its column, so the rows can be imported into
a table created with those kinds. A kind is only guessed when every non-empty value
of the sample fits it; anything else is text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

SAMPLE_ROWS = 1000
MAX_SCALE = 18  # more digits after the point than this: a float, not a decimal
MAX_DIGITS = 38  # a longer whole number is text
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)
# No leading zeros: "007" or "01234" is a code (a ZIP code, an account number), kept as text.
_INTEGER = re.compile(r"[+-]?(?:0|[1-9]\d*)")
_DECIMAL = re.compile(r"[+-]?(0|[1-9]\d*)?\.(\d*)")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_BOOLEANS = frozenset({"true", "false", "yes", "no", "t", "f"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(Z|[+-]\d{2}(?::?\d{2})?)?")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?")
# Two kinds seen in one column: the kind that holds both (anything else together is text).
_WIDER = {
    frozenset({"integer", "decimal"}): "decimal",
    frozenset({"integer", "float"}): "float",
    frozenset({"decimal", "float"}): "float",
    frozenset({"integer", "decimal", "float"}): "float",
    frozenset({"date", "datetime"}): "datetime",
}


@dataclass(frozen=True)
class Inferred:
    """A column's guessed kind (one of explorer.values' kinds) and what the sample showed about it."""

    name: str
    kind: str  # integer, decimal, float, boolean, date, time, datetime, json or text
    nullable: bool  # an empty cell or a JSON null was seen (empty text is a value when empty_as_null is off)
    max_length: int = 0  # the longest value seen, in characters
    big: bool = False  # integer: a value beyond 32 bits was seen
    precision: int = 0  # decimal: digits in all (integer digits + scale)
    scale: int = 0  # decimal: digits after the point
    timezone: bool = False  # datetime: a value with an offset (or Z) was seen


@dataclass
class _Seen:
    kinds: set[str]
    none: bool = False
    empty: bool = False  # ""
    blank: bool = False  # white space only
    max_length: int = 0
    big: bool = False
    whole_digits: int = 0
    scale: int = 0
    timezone: bool = False


def _classify(text: str, seen: _Seen) -> str:
    """The narrowest kind of one stripped, non-empty value (noting sizes and offsets in ``seen``)."""
    if _INTEGER.fullmatch(text):
        digits = len(text.lstrip("+-"))
        if digits <= 19 and _INT64[0] <= int(text) <= _INT64[1]:
            if not _INT32[0] <= int(text) <= _INT32[1]:
                seen.big = True
            seen.whole_digits = max(seen.whole_digits, digits)
            return "integer"
        if digits <= MAX_DIGITS:
            seen.whole_digits = max(seen.whole_digits, digits)
            return "decimal"
        return "text"
    match = _DECIMAL.fullmatch(text)
    if match and (match[1] or match[2]):
        whole, fraction = len(match[1] or ""), len(match[2])
        if fraction > MAX_SCALE:
            return "float"
        if whole > MAX_DIGITS:
            return "text"
        seen.whole_digits, seen.scale = max(seen.whole_digits, whole), max(seen.scale, fraction)
        return "decimal"
    if _FLOAT.fullmatch(text):
        return "float" if math.isfinite(float(text)) else "text"
    if text.lower() in _BOOLEANS:
        return "boolean"
    if _DATE.fullmatch(text):
        return "date" if _valid(dt.date.fromisoformat, text) else "text"
    match = _DATETIME.fullmatch(text)
    if match:
        if not _valid(dt.datetime.fromisoformat, text):
            return "text"
        seen.timezone = seen.timezone or bool(match[1])
        return "datetime"
    if _TIME.fullmatch(text):
        return "time" if _valid(dt.time.fromisoformat, text) else "text"
    if text[0] in "{[" and _valid(json.loads, text):
        return "json"
    return "text"


def _valid(parser: Callable[[str], object], text: str) -> bool:
    try:
        parser(text)
    except (ValueError, RecursionError):
        return False
    return True


def _column(name: str, values: Iterable[str | None], empty_as_null: bool) -> Inferred:
    seen = _Seen(kinds=set())
    for value in values:
        if value is None:
            seen.none = True
            continue
        seen.max_length = max(seen.max_length, len(value))
        if "text" in seen.kinds:
            seen.empty = seen.empty or value == ""
            continue  # nothing narrows text again; only the lengths still matter
        stripped = value.strip()
        if not stripped:
            seen.empty, seen.blank = seen.empty or value == "", seen.blank or value != ""
            continue
        seen.kinds.add(_classify(stripped, seen))
    if not seen.kinds:
        kind = "text"
    elif len(seen.kinds) == 1:
        kind = next(iter(seen.kinds))
    else:
        kind = _WIDER.get(frozenset(seen.kinds), "text")
    # Empty text is NULL only when asked (white space is text); an empty number, date... is always NULL.
    empty_is_null = (seen.empty and empty_as_null) if kind == "text" else (seen.empty or seen.blank)
    nullable = seen.none or empty_is_null
    return Inferred(
        name=name, kind=kind, nullable=nullable, max_length=seen.max_length,
        big=kind == "integer" and seen.big,
        precision=seen.whole_digits + seen.scale if kind == "decimal" else 0,
        scale=seen.scale if kind == "decimal" else 0,
        timezone=kind == "datetime" and seen.timezone,
    )


def infer(columns: Sequence[str], sample_rows: Iterable[Sequence[str | None]], *, empty_as_null: bool = True,
          limit: int = SAMPLE_ROWS) -> list[Inferred]:
    """The kind of each column, from the first ``limit`` rows of ``sample_rows`` (rows aligned with ``columns``).

    ``empty_as_null``: whether an empty text cell will be imported as NULL (as convert.Options says).
    """
    rows = []
    for row in sample_rows:
        if len(rows) >= limit:
            break
        rows.append(row)
    by_column: list[Sequence[str | None]] = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    if len(by_column) != len(columns):
        raise ValueError("the rows and the columns differ in width")
    return [_column(name, values, empty_as_null) for name, values in zip(columns, by_column, strict=True)]


def vet_header_names(names: Sequence[str]) -> list[str]:
    """Column names for a new table: stripped, an empty one named column_N (N its position from 1), a repeated
    one suffixed _2, _3... Names compare without regard to case (MySQL and SQLite do so); nothing else changes
    (the schema editor quotes every name and checks its length)."""
    stripped = [name.strip() for name in names]
    wanted = [name or f"column_{number}" for number, name in enumerate(stripped, 1)]
    taken = {name.casefold() for name in wanted}
    out: list[str] = []
    used: set[str] = set()
    for name in wanted:
        candidate = name
        if candidate.casefold() in used:
            suffix = 2
            while f"{name}_{suffix}".casefold() in used or f"{name}_{suffix}".casefold() in taken:
                suffix += 1
            candidate = f"{name}_{suffix}"
        used.add(candidate.casefold())
        out.append(candidate)
    return out
