"""Turning a batch of imported text into the values a column's driver stores, a column at a time.

A file gives text (or None for a JSON null); the table's columns say what each value must be.
Each column gets one converter that takes the whole batch's values of that column, so the
common cases run in C (``map(int, ...)`` after one regular-expression check of the joined
batch) and only a failing batch is looked at cell by cell, for the row and the reason. The
per-cell rules are the explorer's (explorer.values.parse), so a value an import accepts is a
value the row form accepts, with the same message when it is not.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.explorer.schema import ColumnInfo
from bastion.explorer.values import InvalidValue, parse, to_driver
from bastion.transfer.formats import FORMULA_STARTS

Cells = Sequence[str | None]
Converter = Callable[[Cells], list[Any]]

# One whole batch of a column checked at once: every line an integer of at most 19 digits (64 bits; a
# longer one falls back to the per-cell check, which says what is wrong).
_INTEGERS = re.compile(r"(?:[+-]?\d{1,18}\n)*")
_NEUTRALISED = tuple("'" + start for start in FORMULA_STARTS)


class CellError(ValueError):
    """Cell ``index`` of the batch (0-based) cannot be stored in the column; ``str()`` says why."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Options:
    empty_as_null: bool = True  # an empty text cell is NULL (for other kinds an empty cell is always NULL)
    restore_formulas: bool = False  # "'=..." back to "=..." (undoes the apostrophe Bastion's CSV export adds)


def _cell_by_cell(parse_one: Callable[[str], Any], values: Cells) -> list[Any]:
    out = []
    for index, value in enumerate(values):
        try:
            out.append(None if value is None else parse_one(value))
        except InvalidValue as exc:
            raise CellError(index, str(exc)) from None
    return out


def _blank_to_none(values: Cells) -> list[str | None]:
    return [None if v is None or not v.strip() else v for v in values]


def _binary(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("Binary values are read as base64 (as Bastion exports them); this is not base64.") \
            from None


def _date_text(values: list[Any]) -> list[Any]:
    return list(map(dt.date.isoformat, values))  # SQLite keeps dates as ISO text (values.to_driver)


def _finite_decimals(values: list[Any]) -> list[Any]:
    if not all(map(decimal.Decimal.is_finite, values)):
        raise ValueError("not finite")  # NaN, Infinity: the per-cell check says what to type
    return values


def _decimal_text(values: list[Any]) -> list[Any]:
    return list(map(str, _finite_decimals(values)))  # SQLite: NUMERIC affinity keeps what it can exactly


# Per kind, a parser applied to a whole batch at C speed (map), and what then turns the parsed values into the
# dialect's driver values; each accepts exactly what explorer.values.parse accepts (else the batch is checked
# cell by cell, for the message).
_FAST: dict[str, tuple[Callable[[str], Any], dict[str, Callable[[list[Any]], list[Any]]]]] = {
    "float": (float, {}),
    "decimal": (decimal.Decimal, {"sqlite": _decimal_text, "": _finite_decimals}),
    "date": (dt.date.fromisoformat, {"sqlite": _date_text}),
}


def _fast(values: Cells, parse_one: Callable[[str], Any], finish: Callable[[list[Any]], list[Any]] | None) \
        -> list[Any]:
    """The batch parsed by ``parse_one`` over its non-empty cells (empty and None cells are NULL); raises
    ValueError (or ArithmeticError) when any cell does not parse."""
    blanks = None in values or "" in values
    present = [v for v in values if v] if blanks else list(values)
    parsed = list(map(parse_one, present))  # type: ignore[arg-type]
    if finish is not None:
        parsed = finish(parsed)
    if not blanks:
        return parsed
    found = iter(parsed)
    return [next(found) if v else None for v in values]


def converter(column: ColumnInfo, dialect: str, options: Options) -> Converter:
    """The batch converter for ``column`` of a ``dialect`` table."""
    kind = column.kind
    if kind in ("text", "other"):
        return _text_converter(column, options)
    if kind == "binary":
        def binary(values: Cells) -> list[Any]:
            return _cell_by_cell(_binary, _blank_to_none(values))
        return binary
    if kind == "integer":
        return _integer_converter(column)

    def one(text: str) -> Any:
        return to_driver(parse(text, column), dialect)

    def typed(values: Cells) -> list[Any]:
        return _cell_by_cell(one, _blank_to_none(values))

    if kind not in _FAST:
        return typed
    parse_fast, finishers = _FAST[kind]
    finish = finishers.get(dialect, finishers.get(""))

    def fast(values: Cells) -> list[Any]:
        try:
            return _fast(values, parse_fast, finish)
        except (ValueError, ArithmeticError, TypeError):
            return typed(values)  # the per-cell path finds the cell and says what is wrong with it
    return fast


def _integer_converter(column: ColumnInfo) -> Converter:
    def integers(values: Cells) -> list[Any]:
        if None not in values and _INTEGERS.fullmatch("\n".join(values) + "\n" if values else ""):
            return list(map(int, values))  # the common case: one C-level pass
        return _cell_by_cell(lambda text: parse(text, column), _blank_to_none(values))
    return integers


def _text_converter(column: ColumnInfo, options: Options) -> Converter:
    choices = frozenset(column.choices) if column.choices else None

    def text(values: Cells) -> list[Any]:
        out: list[Any] = list(values)
        if options.restore_formulas:
            out = [v[1:] if v is not None and v.startswith(_NEUTRALISED) else v for v in out]
        if options.empty_as_null and "" in out:  # the scan is C-level; most batches have no empty cell
            out = [v or None for v in out]
        if choices is not None:
            for index, value in enumerate(out):
                if value is not None and value not in choices:
                    raise CellError(index, "Choose one of: " + ", ".join(column.choices or ()) + ".")
        return out
    return text


def convert_batch(rows: Sequence[Sequence[str | None]], converters: Sequence[Converter],
                  positions: Sequence[int]) -> list[tuple[Any, ...]]:
    """The rows of one batch as driver values: file column ``positions[i]`` through ``converters[i]``.

    Raises ``BatchError`` naming the row (0-based in the batch) and the converter index that failed.
    """
    columns = list(zip(*rows, strict=True)) if rows else []
    converted = []
    for number, (position, convert) in enumerate(zip(positions, converters, strict=True)):
        try:
            converted.append(convert(columns[position]) if columns else [])
        except CellError as exc:
            raise BatchError(exc.index, number, str(exc)) from None
    return list(zip(*converted, strict=True))


class BatchError(ValueError):
    """A value of a batch cannot be stored: row ``row`` (0-based in the batch), target column ``column``."""

    def __init__(self, row: int, column: int, message: str) -> None:
        super().__init__(message)
        self.row, self.column = row, column
