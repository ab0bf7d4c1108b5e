"""The column types the new-table form offers, what each becomes on each engine, and typed defaults.

A default is the user's literal value, never SQL: numbers and booleans are parsed
here and handed to SQLAlchemy as typed literals, everything else as a string,
which the dialect renders as a quoted string literal (T01, T02). The engine then
checks what only it can (a date it cannot read, a number too large for the column)
and refuses the whole statement.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    Time,
    literal,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

MAX_VARCHAR_LENGTH = 10_485_760  # PostgreSQL's limit; MySQL refuses lower lengths itself (by row size)
MAX_PRECISION = 1000  # PostgreSQL's; MySQL allows 65, MariaDB 65, and say so themselves
_SIZE = re.compile(r"\s*(\d{1,8})\s*(?:,\s*(\d{1,8})\s*)?")
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


class Size(StrEnum):
    NONE = ""
    LENGTH = "length"  # varchar(n)
    PRECISION = "precision"  # decimal(p, s)


class DefaultKind(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TEXT = "text"  # sent as a string literal; the engine reads it as the column's type
    JSON = "json"
    NONE = "none"  # no default can be given here


@dataclass(frozen=True)
class ColumnType:
    key: str
    label: str
    size: Size = Size.NONE
    default: DefaultKind = DefaultKind.TEXT
    integer: bool = False  # may autoincrement
    dialects: frozenset[str] = frozenset({"sqlite", "postgresql", "mysql"})


TYPES = (
    ColumnType("integer", "integer", default=DefaultKind.INTEGER, integer=True),
    ColumnType("bigint", "big integer", default=DefaultKind.INTEGER, integer=True),
    ColumnType("decimal", "decimal(p, s)", size=Size.PRECISION, default=DefaultKind.DECIMAL),
    ColumnType("float", "float", default=DefaultKind.FLOAT),
    ColumnType("boolean", "boolean", default=DefaultKind.BOOLEAN),
    ColumnType("text", "text"),
    ColumnType("varchar", "varchar(n)", size=Size.LENGTH),
    ColumnType("date", "date"),
    ColumnType("time", "time"),
    ColumnType("timestamp", "timestamp"),
    ColumnType("timestamptz", "timestamp with time zone", dialects=frozenset({"postgresql"})),
    ColumnType("json", "JSON", default=DefaultKind.JSON),
    ColumnType("binary", "binary", default=DefaultKind.NONE),
)
BY_KEY = {t.key: t for t in TYPES}
DEFAULT_TYPE = "integer"


def types_for(dialect: str) -> list[ColumnType]:
    return [t for t in TYPES if dialect in t.dialects]


@dataclass(frozen=True)
class Sizes:
    length: int | None = None
    precision: int | None = None
    scale: int | None = None


def sa_type(key: str, sizes: Sizes) -> TypeEngine[Any]:
    """The SQLAlchemy type of a column of type ``key``; variants pick each engine's roomiest fitting type."""
    if key == "integer":
        return Integer()
    if key == "bigint":
        return BigInteger()
    if key == "decimal":
        return Numeric(sizes.precision, sizes.scale, asdecimal=True)
    if key == "float":
        return Double()
    if key == "boolean":
        return Boolean(create_constraint=False)
    if key == "text":
        return Text().with_variant(mysql.LONGTEXT(), "mysql")  # MySQL's TEXT holds 64 KB only
    if key == "varchar":
        return String(sizes.length)
    if key == "date":
        return Date()
    if key == "time":
        return Time()
    if key == "timestamp":
        return DateTime(timezone=False)
    if key == "timestamptz":
        return DateTime(timezone=True)
    if key == "json":
        return JSON().with_variant(postgresql.JSONB(), "postgresql")
    if key == "binary":
        return LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")  # BLOB holds 64 KB only
    raise ValueError(f"unknown column type {key!r}")


def type_choices(dialect: Dialect) -> list[tuple[str, str]]:
    """(key, label) for the form: each label says what the engine will get, e.g. "text — LONGTEXT"."""
    choices = []
    for column_type in types_for(dialect.name):
        sample = Sizes(length=1, precision=1, scale=0)
        written = re.sub(r"\(.*\)", "", str(sa_type(column_type.key, sample).compile(dialect=dialect)))
        suffix = {Size.LENGTH: "(n)", Size.PRECISION: "(p, s)", Size.NONE: ""}[column_type.size]
        choices.append((column_type.key, f"{column_type.label} — {written}{suffix}"))
    return choices


# --- sizes -----------------------------------------------------------------------------------------
def parse_size(key: str, text: str) -> Sizes:
    """The size typed for a column of type ``key`` ("255", "12,2" or nothing); ValueError says what is wrong."""
    column_type = BY_KEY[key]
    text = text.strip()
    if column_type.size == Size.NONE:
        if text:
            raise ValueError(f"A {column_type.label} column takes no size (only varchar and decimal do).")
        return Sizes()
    match = _SIZE.fullmatch(text) if text else None
    if column_type.size == Size.LENGTH:
        if match is None or match.group(2) is not None:
            raise ValueError("A varchar column needs its length: a whole number such as 255.")
        sizes = Sizes(length=int(match.group(1)))
    else:
        if not text:
            return Sizes()  # the engine's own default precision
        if match is None:
            raise ValueError("A decimal column's size is its precision and scale, such as 12,2 (or 12).")
        sizes = Sizes(precision=int(match.group(1)), scale=int(match.group(2) or 0))
    problem = size_problem(key, sizes)
    if problem:
        raise ValueError(problem)
    return sizes


def size_problem(key: str, sizes: Sizes) -> str | None:
    """Why ``sizes`` do not fit a column of type ``key``; None when they do."""
    column_type = BY_KEY[key]
    if column_type.size == Size.LENGTH:
        if sizes.length is None or not 1 <= sizes.length <= MAX_VARCHAR_LENGTH:
            return f"A varchar length is a whole number from 1 to {MAX_VARCHAR_LENGTH}."
    elif column_type.size == Size.PRECISION:
        if sizes.precision is None:
            return None if sizes.scale is None else "A decimal scale needs a precision."
        if not 1 <= sizes.precision <= MAX_PRECISION:
            return f"A decimal precision is a whole number from 1 to {MAX_PRECISION}."
        if sizes.scale is not None and not 0 <= sizes.scale <= sizes.precision:
            return "A decimal scale is a whole number from 0 to the precision."
    elif sizes != Sizes():
        return f"A {column_type.label} column takes no size (only varchar and decimal do)."
    return None


# --- defaults --------------------------------------------------------------------------------------
# The most digits any engine keeps in a decimal (PostgreSQL's numeric declares up to 1000).
MAX_DECIMAL_DIGITS = 1000


def parse_default(key: str, text: str, sizes: Sizes) -> Any:
    """The default typed for a column of type ``key``, as the value it stands for; ValueError says what is wrong."""
    column_type = BY_KEY[key]
    kind = column_type.default
    if "\x00" in text:
        raise ValueError("A default cannot contain the NUL character.")
    if kind == DefaultKind.NONE:
        raise ValueError(f"A {column_type.label} column cannot get a default here.")
    if kind == DefaultKind.INTEGER:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"The default of an {column_type.label} column is a whole number.") from None
    if kind == DefaultKind.DECIMAL:
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError("The default of a decimal column is a number such as 12.50.") from None
        if not value.is_finite():
            raise ValueError("The default of a decimal column is a finite number.")
        if abs(value.adjusted()) > MAX_DECIMAL_DIGITS:  # before writing it out: 1E+999999999 has a billion digits
            raise ValueError(f"The default of a decimal column has at most {MAX_DECIMAL_DIGITS} digits.")
        return Decimal(format(value, "f"))  # 1E+3 is written 1000
    if kind == DefaultKind.FLOAT:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError("The default of a float column is a number such as 1.5.") from None
        if not math.isfinite(number):
            raise ValueError("The default of a float column is a finite number.")
        return number
    if kind == DefaultKind.BOOLEAN:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError("The default of a boolean column is true or false.")
    if kind == DefaultKind.JSON:
        try:
            json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            raise ValueError("The default of a JSON column is a JSON value, such as {} or \"text\".") from None
        return text
    if column_type.size == Size.LENGTH and sizes.length is not None and len(text) > sizes.length:
        raise ValueError(f"The default is longer than the column's {sizes.length} characters.")
    return text


def server_default(key: str, value: Any) -> str | ColumnElement[Any]:
    """``value`` (from parse_default) as SQLAlchemy renders it in DDL: a typed literal, or a string literal."""
    if isinstance(value, str):
        return value  # rendered by the dialect as a quoted, escaped string literal
    literal_type = {bool: Boolean(create_constraint=False), int: BigInteger(), float: Double(),
                    Decimal: Numeric()}[type(value)]
    return literal(value, literal_type)
