"""Values between the browser and the database: parsing typed input, binding, and display.

Input is parsed per column kind into Python values with a plain-language error
per field; values are bound without SQL casts (``bound``) so every engine
applies its own assignment rules (a PostgreSQL enum, inet or jsonb column takes
the text as typed); values read back are shown as text, NULL kept distinct.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, literal
from sqlalchemy.types import NullType

from bastion.access.masking import mask_value
from bastion.access.models import ColumnMode
from bastion.access.policy import ColumnView
from bastion.explorer.schema import ColumnInfo

TRUNCATE_AT = 200  # characters of a cell shown in the table view
_INTEGER = re.compile(r"[+-]?\d{1,40}")
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


class InvalidValue(ValueError):
    """The text cannot be a value of the column; the message says what to type."""


def _parse_datetime(text: str, column: ColumnInfo) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue("Enter a date and time as YYYY-MM-DD HH:MM[:SS], optionally with an offset "
                           "such as +02:00.") from None
    if column.timezone and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # the form says: UTC unless an offset is given
    return value


def _parse_json(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        raise InvalidValue(f"This is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    return text


def _parse_decimal(text: str) -> decimal.Decimal:
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise InvalidValue("Enter a number such as 12.50.") from None
    if not value.is_finite():
        raise InvalidValue("Enter a finite number.")
    return value


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidValue("Enter a number such as 3.14 or 1e-6.") from None


def _parse_integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise InvalidValue("Enter a whole number.")
    return int(text)


def _parse_boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidValue("Enter true or false.")


def _parse_iso(parser: Any, message: str) -> Any:
    def parse(text: str) -> Any:
        try:
            return parser(text)
        except ValueError:
            raise InvalidValue(message) from None
    return parse


def _parse_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidValue("Enter a UUID such as 123e4567-e89b-12d3-a456-426614174000.") from None


_PARSERS = {
    "integer": _parse_integer,
    "decimal": _parse_decimal,
    "float": _parse_float,
    "boolean": _parse_boolean,
    "date": _parse_iso(dt.date.fromisoformat, "Enter a date as YYYY-MM-DD."),
    "time": _parse_iso(dt.time.fromisoformat, "Enter a time as HH:MM or HH:MM:SS."),
    "json": _parse_json,
    "uuid": _parse_uuid,
}


def parse(text: str, column: ColumnInfo) -> Any:
    """The value ``text`` stands for in ``column`` (numbers, dates... stripped of surrounding spaces)."""
    if column.kind == "datetime":
        return _parse_datetime(text.strip(), column)
    parser = _PARSERS.get(column.kind)
    if parser is None:  # text, binary-as-text and anything the engine parses itself
        if column.choices and text not in column.choices:
            raise InvalidValue("Choose one of: " + ", ".join(column.choices) + ".")
        return text
    return parser(text.strip())


def to_driver(value: Any, dialect: str) -> Any:
    """``value`` in the form the dialect's driver stores faithfully."""
    if dialect == "sqlite":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, uuid.UUID | decimal.Decimal):
            return str(value)  # NUMERIC affinity turns the text into a number when that loses nothing
    elif dialect == "mysql":
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            # MySQL DATETIME/TIMESTAMP carry no offset: store the UTC time.
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        if isinstance(value, uuid.UUID):
            return str(value)
    return value


def bound(value: Any, dialect: str) -> BindParameter[Any]:
    """A bound parameter without a type: no SQL cast, so the engine converts it to the column's type."""
    return literal(to_driver(value, dialect), NullType())


# --- display ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One value, ready for a template: ``text`` is already cut to size; nothing here is marked safe."""

    text: str = ""
    null: bool = False
    masked: bool = False
    binary_size: int | None = None
    truncated: bool = False
    length: int = 0


def as_text(value: Any, *, pretty: bool = False) -> str:
    """The text form of a database value (not for binary values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2 if pretty else None, ensure_ascii=False, sort_keys=pretty)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def pretty_json(text: str) -> str | None:
    """``text`` re-indented when it is a JSON object or array; None otherwise."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def is_binary(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


@dataclass(frozen=True)
class Preview:
    """The start and the length of a long value, read instead of the value itself (a table page never
    loads whole BLOBs or long texts): ``prefix`` None for binary values, whose length is in bytes."""

    prefix: str | None
    length: int


def preview_of(value: Any, column: ColumnInfo) -> Any:
    """The form in which a table page compares a value: a Preview for text and binary columns."""
    if isinstance(value, Preview) or value is None:
        return value
    if column.kind == "binary" and is_binary(value):
        return Preview(None, len(value))
    if column.kind == "text" and isinstance(value, str):
        return Preview(value[: TRUNCATE_AT + 1], len(value))
    return value


def cell(value: Any, view: ColumnView, *, limit: int | None = TRUNCATE_AT) -> Cell:
    """How ``value`` is shown to a user whose view of its column is ``view``."""
    if value is None:
        return Cell(null=True)
    if isinstance(value, Preview):
        if value.prefix is None:
            return Cell(binary_size=value.length)
        text = value.prefix if limit is None else value.prefix[:limit]
        return Cell(text=text, truncated=value.length > len(text), length=value.length)
    if view.mode == ColumnMode.MASKED:
        return Cell(text=mask_value(value, view.mask_rule) or "", masked=True)
    if is_binary(value):
        return Cell(binary_size=len(value))
    text = as_text(value)
    if limit is not None and len(text) > limit:
        return Cell(text=text[:limit], truncated=True, length=len(text))
    return Cell(text=text, length=len(text))


def form_text(value: Any) -> str:
    """``value`` as a form field's initial text."""
    if value is None:
        return ""
    return as_text(value, pretty=True)
