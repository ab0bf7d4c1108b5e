"""Writing rows out as CSV, JSON Lines, JSON or SQL INSERT statements, batch by batch (constant memory).

Shared by table exports and console downloads. CSV cells a spreadsheet would run as a
formula get an apostrophe in front (OWASP, T27); binary values are base64 in CSV and JSON;
SQL literals are written by the dialect's own literal processors (strings quoted and
escaped as that engine reads them), never pasted.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import itertools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.engine import Dialect

from bastion.explorer.values import as_text

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson", "json": "application/json",
               "sql": "application/sql; charset=utf-8"}
LABELS = {"csv": "CSV", "jsonl": "JSON Lines", "json": "JSON (one array)", "sql": "SQL INSERT statements"}
# OWASP CSV injection: a cell starting with one of these is a formula to a spreadsheet (T27).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Batches = Iterator[Sequence[Sequence[Any]]]


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (prefixed with an apostrophe, as OWASP advises)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, str):
        return neutralise(value)
    return as_text(value)


def json_value(value: Any) -> Any:
    """A value as JSON holds it: numbers and text as they are; binary as base64; the rest as its exact text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return as_text(value)  # decimals, dates, times, JSON documents: their exact text


def unique_keys(columns: Sequence[str]) -> list[str]:
    """JSON object keys (and SQL column lists): a repeated column name gets _2, _3 ..., skipping any name the
    result already has (id, id, id_2 gives id, id_3, id_2), so no two keys are the same."""
    names = set(columns)
    taken: set[str] = set()
    last: dict[str, int] = {}
    keys = []
    for name in columns:
        key, n = name, last.get(name, 1)
        while key in taken or (key != name and key in names):
            n += 1
            key = f"{name}_{n}"
        last[name] = n
        taken.add(key)
        keys.append(key)
    return keys


def csv_chunks(columns: Sequence[str], batches: Batches) -> Iterator[bytes]:
    buffer = io.StringIO()
    # Every cell quoted: a spreadsheet that splits cells on ";" (most European locales) would otherwise make
    # "x;=cmd|..." two cells, the second a formula (OWASP CSV injection, T27).
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow([neutralise(c) for c in columns])
    yield buffer.getvalue().encode()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        if not _written_as_it_is(writer, buffer, batch):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(_csv_rows(batch))
        yield buffer.getvalue().encode()


_PLAIN_TYPES = frozenset({int, float, type(None)})  # written by the csv module as they are (bool is not int here)
_TEXT_TYPES = frozenset({str, type(None)})
_PLAIN_OR_TEXT = _PLAIN_TYPES | _TEXT_TYPES
_FORMULA_AFTER_NEWLINE = re.compile("(?:^|\n)[" + re.escape("".join(FORMULA_STARTS)) + "]")
# In QUOTE_ALL output every cell starts with a quote after a comma or a line start; a quote inside a cell is
# doubled, so this finds exactly the cells that begin with a formula sign (and negative numbers).
_FORMULA_CELL = re.compile('(?:^|,)"[' + re.escape("".join(FORMULA_STARTS)) + "]", re.MULTILINE)


def _written_as_it_is(writer: Any, buffer: io.StringIO, batch: Sequence[Sequence[Any]]) -> bool:
    """Write the batch without converting anything, when that is safe: every value a number, text or NULL, and
    no cell of the output starting with a formula sign. False (the output then discarded): convert it."""
    types = set(map(type, itertools.chain.from_iterable(batch)))
    if not types <= _PLAIN_OR_TEXT:
        return False
    writer.writerows(batch)
    return str not in types or not _FORMULA_CELL.search(buffer.getvalue())


def _csv_column(values: Sequence[Any]) -> Sequence[Any]:
    """One column of a batch as the CSV writer takes it. Checked a column at a time: numbers and NULLs pass
    as they are, and text passes unless one of its values could start a formula (one regular-expression scan
    of the joined column; a match, even one inside a value after a line break, converts it value by value)."""
    types = set(map(type, values))
    if types <= _PLAIN_TYPES:
        return values
    if types <= _TEXT_TYPES and not _FORMULA_AFTER_NEWLINE.search("\n".join(filter(None, values))):
        return values
    return [_csv_value(v) for v in values]


def _csv_rows(batch: Sequence[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    if not batch:
        return iter(())
    return zip(*(_csv_column(column) for column in zip(*batch, strict=True)), strict=True)


def _objects(columns: Sequence[str], batch: Sequence[Sequence[Any]]) -> list[str]:
    keys = unique_keys(columns)
    return [json.dumps(dict(zip(keys, (json_value(v) for v in row), strict=True)), ensure_ascii=False)
            for row in batch]


def json_chunks(columns: Sequence[str], batches: Batches) -> Iterator[bytes]:
    yield b"["
    first = True
    for batch in batches:
        text = ",\n".join(_objects(columns, batch))
        if text:
            yield (("\n" if first else ",\n") + text).encode()
            first = False
    yield b"\n]\n"


def jsonl_chunks(columns: Sequence[str], batches: Batches) -> Iterator[bytes]:
    for batch in batches:
        lines = _objects(columns, batch)
        if lines:
            yield ("\n".join(lines) + "\n").encode()


def sql_literal(value: Any, dialect: Dialect) -> str:
    """``value`` as a literal of ``dialect``'s SQL; strings through the dialect's own literal processor."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return ("1" if value else "0") if dialect.name == "sqlite" else ("TRUE" if value else "FALSE")
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _string(str(value), dialect)
    if isinstance(value, bytes | bytearray | memoryview):
        hex_digits = bytes(value).hex()
        return f"'\\x{hex_digits}'::bytea" if dialect.name == "postgresql" else f"X'{hex_digits}'"
    if isinstance(value, dt.date | dt.time | dt.timedelta | uuid.UUID):
        return _string(as_text(value), dialect)
    if isinstance(value, dict | list):
        return _string(json.dumps(value, ensure_ascii=False), dialect)
    return _string(str(value), dialect)


def _string(text: str, dialect: Dialect) -> str:
    if "\x00" in text:
        # A NUL ends a line for SQLite's and MySQL's command-line clients: the literal would stay open and the
        # next row's text run as SQL. Such text is written as its UTF-8 bytes in hexadecimal instead.
        hex_digits = text.encode("utf-8").hex()
        return (f"CAST(X'{hex_digits}' AS TEXT)" if dialect.name == "sqlite"
                else f"CONVERT(X'{hex_digits}' USING utf8mb4)")
    return _quoted(text, dialect)


def _quoted(text: str, dialect: Dialect) -> str:
    """A string literal as the dialect's compiler writes one (MySQL doubles backslashes when the server reads
    them as escapes; PostgreSQL when standard_conforming_strings is off), without the doubled % that
    drivers with format parameters expect: this text goes to a file, not through a driver."""
    literal = dialect.statement_compiler(dialect, None).render_literal_value(text, String())
    return literal.replace("%%", "%") if dialect.paramstyle in ("format", "pyformat") else literal


def sql_header(dialect: Dialect) -> str:
    """How the file's string literals are to be read, set first (as pg_dump does): a server that reads
    backslashes otherwise would end a string early and run the rest."""
    if dialect.name == "postgresql":
        return "SET standard_conforming_strings = on;\n"
    if dialect.name == "mysql":
        if getattr(dialect, "_backslash_escapes", True):
            return "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '');\n"
        return "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES');\n"
    return ""


def sql_chunks(table: Table, dialect: Dialect) -> Callable[[Sequence[str], Batches], Iterator[bytes]]:
    """INSERT statements into ``table``, one per row: the statement's head as SQLAlchemy writes it for the dialect
    (every name quoted by it), each value a literal from sql_literal."""

    def chunks(columns: Sequence[str], batches: Batches) -> Iterator[bytes]:
        target = Table(table.name, MetaData(), *(Column(c, quote=True) for c in columns), schema=table.schema,
                       quote=True, quote_schema=True)
        compiled = str(insert(target).compile(dialect=dialect, column_keys=list(columns)))
        yield sql_header(dialect).encode()
        head = compiled[:compiled.rindex(" VALUES (")]
        if dialect.paramstyle in ("format", "pyformat"):  # names with % come doubled, for a driver; not here
            head = head.replace("%%", "%")
        for batch in batches:
            yield "".join(head + " VALUES (" + ", ".join(sql_literal(v, dialect) for v in row) + ");\n"
                          for row in batch).encode()

    return chunks


def writer(fmt: str, table: Table | None = None, dialect: Dialect | None = None) -> Callable[
        [Sequence[str], Batches], Iterator[bytes]]:
    """The chunk writer of ``fmt`` (sql needs the table and the dialect)."""
    if fmt == "sql":
        if table is None or dialect is None:
            raise ValueError("SQL statements need a table and a dialect")
        return sql_chunks(table, dialect)
    return {"csv": csv_chunks, "jsonl": jsonl_chunks, "json": json_chunks}[fmt]
