"""Reading an uploaded CSV, JSON or JSON Lines file as rows of text, batch by batch (constant memory).

``detect`` looks at the start of a file and guesses its format, encoding and CSV dialect;
the user may override every guess, and ``open_rows`` reads the file with the options
chosen. Cells come out as text (None for a JSON null), aligned with ``columns``: numbers
from JSON keep their exact text, nested JSON values come out as compact JSON text.

Limits (T28): a line, a field and a JSON record are at most ``max_record_bytes``
characters; a file has at most ``max_columns`` columns; a batch holds about
``batch_bytes`` of the file at most. XML and YAML are refused, never parsed (T26).
Nothing read here is ever evaluated.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import csv
import io
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

FORMATS = {"csv": "CSV", "json": "JSON (an array of objects)", "jsonl": "JSON Lines (one object per line)"}
# The encodings a user may choose (stateless codecs only: a CSV delimiter must be a character of its own).
ENCODINGS = {
    "utf-8": "UTF-8", "utf-8-sig": "UTF-8 with byte order mark", "utf-16": "UTF-16 (with byte order mark)",
    "utf-16-le": "UTF-16 little-endian", "utf-16-be": "UTF-16 big-endian", "utf-32": "UTF-32",
    "cp1252": "Windows-1252 (Western European)", "latin-1": "ISO-8859-1 (Latin-1)",
    "iso-8859-15": "ISO-8859-15 (Latin-9)", "cp1250": "Windows-1250 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)", "mac-roman": "Mac OS Roman", "shift_jis": "Shift JIS",
    "gb18030": "GB18030 (Chinese)", "big5": "Big5 (Traditional Chinese)", "euc-kr": "EUC-KR (Korean)",
}
DELIMITERS = ",;\t|"
SAMPLE_BYTES = 64 * 1024
SNIFF_CHARS = 4096  # csv.Sniffer's quote regexes take quadratic time: it sees this much at most
MAX_COLUMNS = 1000
MAX_RECORD_BYTES = 16 * 1024 * 1024
BATCH_BYTES = 16 * 1024 * 1024
KEY_SAMPLE_ROWS = 1000
CHUNK_CHARS = 64 * 1024
_STEP = 64  # CSV rows read between two looks at the batch's size in bytes
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}.*)?")
_YAML_PYTHON_TAG = re.compile(r"(?:^|[\s:\-\[{,])!!python/", re.MULTILINE)
_XML_TAG = re.compile(r"<[A-Za-z_][\w:.-]*[\s/>]")
_NOT_TEXT = "This is not a text file (it holds NUL bytes): save the data as CSV or JSON."
_NOT_DECIMAL_COMMA = re.compile(r"(?<!\d),|,(?!\d)")
_REFUSED_MARKUP = "XML and YAML files are not accepted: save the data as CSV or JSON."


class SourceError(ValueError):
    """The file cannot be read as asked; ``message`` says why in plain words, ``row`` which data row
    (1-based, header excluded) when one is to blame, ``line`` the line of the file when known."""

    def __init__(self, message: str, row: int | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.row, self.line = message, row, line


@dataclass(frozen=True)
class SourceOptions:
    """How to read a file: what ``detect`` guessed, as the user confirmed or changed it, and the limits."""

    format: str = "csv"  # a key of FORMATS
    encoding: str = "utf-8"  # a key of ENCODINGS
    delimiter: str = ","  # CSV only
    quotechar: str = '"'  # CSV only
    header: bool = True  # CSV only: the first row names the columns
    max_columns: int = MAX_COLUMNS
    max_record_bytes: int = MAX_RECORD_BYTES  # characters, in fact: of a line, a field or a JSON record
    batch_bytes: int = BATCH_BYTES  # a batch ends early once it holds this much of the file
    key_sample_rows: int = KEY_SAMPLE_ROWS  # JSON: the objects whose keys make the columns
    chunk_chars: int = CHUNK_CHARS  # JSON arrays: characters read at a time

    def as_params(self) -> dict[str, Any]:
        """The options as JSON (a job's params); ``SourceOptions(**params)`` makes them again."""
        return asdict(self)


@dataclass(frozen=True)
class Detected:
    """What the start of a file looks like; ``options`` turns it into SourceOptions (with the user's changes)."""

    format: str
    encoding: str
    delimiter: str = ","
    quotechar: str = '"'
    header: bool = True

    def options(self, **overrides: Any) -> SourceOptions:
        values = {"format": self.format, "encoding": self.encoding, "delimiter": self.delimiter,
                  "quotechar": self.quotechar, "header": self.header}
        return SourceOptions(**{**values, **overrides})


# --- detection ------------------------------------------------------------------------------------------------
def detect(path: Path) -> Detected:
    """The format, encoding and (for CSV) dialect of the file at ``path``, from its first 64 KB.

    Raises SourceError for an empty file, a binary file, XML or YAML.
    """
    with path.open("rb") as file:
        sample = file.read(SAMPLE_BYTES)
        at_eof = not file.read(1)
    if not sample.strip():
        raise SourceError("The file is empty.")
    _refuse_binary(sample)
    encoding = _detect_encoding(sample, at_eof)
    text = _decode_sample(sample, encoding, at_eof)
    stripped = text.lstrip()
    if not stripped:
        raise SourceError("The file is empty.")
    _refuse_markup(stripped)
    if stripped.startswith("["):
        rest = stripped[1:].lstrip()
        if rest.startswith(("{", "]")) or (not rest and not at_eof):
            return Detected("json", encoding)
        if at_eof and _is_json(stripped):
            raise SourceError("This JSON file is not an array of objects: each row must be an object "
                              '({"column": value, ...}).')
    elif stripped.startswith("{"):
        first_line, newline, _ = stripped.partition("\n")
        if not newline and not at_eof:
            return Detected("jsonl", encoding)  # one object longer than the sample: JSON Lines, or an error later
        try:
            first = json.loads(first_line)
        except ValueError:
            first = None
        except RecursionError:
            raise SourceError("The first line nests JSON values too deeply.") from None
        if isinstance(first, dict):
            return Detected("jsonl", encoding)
        raise SourceError("This file is one JSON object, not an array of objects ([{...}, {...}]) nor JSON Lines "
                          "(one object per line).")
    delimiter, quotechar = _sniff_dialect(text if at_eof else _whole_lines(text))
    header = _has_header(text if at_eof else _whole_lines(text), delimiter, quotechar)
    return Detected("csv", encoding, delimiter, quotechar, header)


def _refuse_binary(sample: bytes) -> None:
    if sample.startswith(b"PK\x03\x04"):
        raise SourceError("This is a ZIP file (an Excel or OpenDocument workbook is one): save the sheet as CSV.")
    if sample.startswith(b"\x1f\x8b"):
        raise SourceError("This is a compressed (gzip) file: uncompress it first.")
    if sample.startswith(b"%PDF"):
        raise SourceError("This is a PDF document, not data: save the data as CSV or JSON.")
    if sample.startswith(b"\xd0\xcf\x11\xe0"):
        raise SourceError("This is an old Excel (or Office) file: save the sheet as CSV.")


def _refuse_markup(text: str) -> None:
    """XML (a billion-laughs bomb among them) and YAML (``!!python/object`` among them) are refused unread."""
    head = text.lstrip("\ufeff \t\r\n")[:64].lower()
    if head.startswith(("<?xml", "<!doctype", "<!entity", "<!--", "<html", "%yaml")):
        raise SourceError(_REFUSED_MARKUP)
    first_line = text.lstrip("\ufeff \t\r\n").partition("\n")[0].rstrip()
    if _XML_TAG.match(first_line) and first_line.endswith(">"):  # <data> or <row a="1"/>, without a prolog
        raise SourceError(_REFUSED_MARKUP)
    if re.match(r"---(?:[ \t]|$)", head, re.MULTILINE) or _YAML_PYTHON_TAG.search(text):
        raise SourceError(_REFUSED_MARKUP)


def _decodes(sample: bytes, encoding: str, at_eof: bool) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=at_eof)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return True


def _detect_encoding(sample: bytes, at_eof: bool) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    zeros = sample.count(0)
    if zeros * 10 >= len(sample):  # many NULs: UTF-16 without a byte order mark, or not text at all
        half = len(sample) // 2 or 1
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        for encoding, many, few in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
            if many > half // 4 and few <= half // 20 and _decodes(sample[: len(sample) // 2 * 2], encoding, False):
                return encoding
        raise SourceError(_NOT_TEXT)
    if _decodes(sample, "utf-8", at_eof):
        return "utf-8"  # a stray NUL is named with its line when the rows are read
    if zeros:
        raise SourceError(_NOT_TEXT)
    if _decodes(sample, "cp1252", at_eof):
        return "cp1252"
    return "latin-1"  # every byte is a character: the user sees the text and may choose better


def _decode_sample(sample: bytes, encoding: str, at_eof: bool) -> str:
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(sample, final=at_eof)
    return text.removeprefix("\ufeff")


def _whole_lines(text: str) -> str:
    """``text`` without its last line, which the sample may have cut (unless that is all there is)."""
    end = max(text.rfind("\n"), text.rfind("\r"))
    return text[: end + 1] if end > 0 else text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _rows(text: str, delimiter: str, quotechar: str, limit: int = 200) -> list[list[str]]:
    rows: list[list[str]] = []
    with contextlib.suppress(csv.Error):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
        for row in itertools.islice(reader, limit):
            if row:
                rows.append(row)
    return rows


def _consistency(rows: list[list[str]]) -> tuple[bool, float, int]:
    """How well a delimiter splits the rows: more than one column, the share of rows with the usual count."""
    if not rows:
        return (False, 0.0, 0)
    counts = collections.Counter(map(len, rows))
    usual, seen = counts.most_common(1)[0]
    return (usual > 1, seen / len(rows), usual)


def _sniff_dialect(text: str) -> tuple[str, str]:
    """csv.Sniffer's guess on the first few KB, kept when the whole sample agrees; else the delimiter that splits
    the sample's rows most consistently; else ","."""
    quotechar = '"'
    guess = None
    try:
        sniffed = csv.Sniffer().sniff(_whole_lines(text[:SNIFF_CHARS]), delimiters=DELIMITERS)
        if sniffed.quotechar in ('"', "'"):
            quotechar = sniffed.quotechar
        guess = sniffed.delimiter
    except csv.Error:
        pass
    scores = {d: _consistency(_rows(text, d, quotechar)) for d in DELIMITERS}
    consistent = {d for d, (columns, share, _) in scores.items() if columns and share >= 0.9}
    if {",", ";"} <= consistent and not _NOT_DECIMAL_COMMA.search(text):
        return ";", quotechar  # every comma sits between digits: decimal commas, as Excel writes them in Europe
    if guess in consistent:
        return guess, quotechar
    best = max(DELIMITERS, key=lambda d: scores[d])
    return (best if scores[best][0] else ","), quotechar


def _looks_like_value(cell: str) -> bool:
    cell = cell.strip()
    return bool(_NUMBER.fullmatch(cell) or _ISO_DATE.fullmatch(cell))


class _FixedSniffer(csv.Sniffer):
    """csv.Sniffer.has_header with the dialect already chosen (it would sniff again, without our restrictions)."""

    def __init__(self, delimiter: str, quotechar: str) -> None:
        super().__init__()
        self.fixed = (delimiter, quotechar)

    def sniff(self, sample: str, delimiters: str | None = None) -> type[csv.Dialect]:
        delimiter, quotechar = self.fixed

        class Fixed(csv.excel):
            pass
        Fixed.delimiter, Fixed.quotechar = delimiter, quotechar
        return Fixed


def _has_header(text: str, delimiter: str, quotechar: str) -> bool:
    """A first row of non-empty, distinct names none of which looks like a number or a date is a header;
    otherwise csv.Sniffer.has_header decides (it compares the first row with the next ones)."""
    rows = _rows(text, delimiter, quotechar, limit=21)
    if not rows:
        return False
    first = rows[0]
    plain_names = (all(c.strip() for c in first) and len(set(first)) == len(first)
                   and not any(_looks_like_value(c) for c in first))
    if plain_names:
        return True
    try:
        return _FixedSniffer(delimiter, quotechar).has_header(text)
    except (csv.Error, ZeroDivisionError):
        return False


# --- reading ----------------------------------------------------------------------------------------------------
class _CountingReader(io.BufferedReader):
    """A buffered file that counts the bytes handed to the text layer (the progress, and where a decoding
    error is)."""

    consumed = 0

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self.consumed += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def _check_options(options: SourceOptions) -> None:
    if options.format not in FORMATS:
        raise SourceError("Choose CSV, JSON or JSON Lines as the file's format.")
    if options.encoding not in ENCODINGS:
        raise SourceError("Choose one of the listed encodings.")
    if options.format == "csv":
        for name, char in (("delimiter", options.delimiter), ("quote character", options.quotechar)):
            if len(char) != 1 or char in "\r\n":
                raise SourceError(f"The {name} must be one character (not a line break).")
        if options.delimiter == options.quotechar:
            raise SourceError("The delimiter and the quote character must differ.")
    if min(options.max_columns, options.max_record_bytes, options.batch_bytes, options.key_sample_rows,
           options.chunk_chars) < 1:
        raise ValueError("limits must be positive")


def _size(limit: int) -> str:
    return f"{limit // 1048576} MB" if limit % 1048576 == 0 else f"{limit:,} characters"


def _column_names(names: Sequence[str], max_columns: int) -> list[str]:
    """Header names without surrounding white space, an empty one named column_N; the same name twice is an
    error (for a new table, inference.vet_header_names also tells names apart that differ only in case)."""
    if len(names) > max_columns:
        raise SourceError(f"The file has {len(names):,} columns; at most {max_columns:,} can be imported.")
    out = [name.strip() or f"column_{number}" for number, name in enumerate(names, 1)]
    first_at: dict[str, int] = {}
    for number, name in enumerate(out, 1):
        if name in first_at:
            raise SourceError(f'The header has the name "{name}" twice (columns {first_at[name]} and {number}): '
                              "rename one, or read the first row as data.")
        first_at[name] = number
    return out


class RowSource:
    """Rows of one file, read as they are asked for. Use as a context manager (or call ``close``).

    ``columns`` names the cells of every row; ``row_number`` is the data row number (1-based, header and blank
    lines not counted) of the last row yielded so far; ``line_number`` the file's line at the end of that row
    (CSV, JSON Lines; None for a JSON array).
    """

    columns: list[str]
    row_number: int = 0
    line_number: int | None = None

    def __init__(self, raw: _CountingReader, text: TextIO, options: SourceOptions) -> None:
        self._raw, self._text, self.options = raw, text, options
        self._failed: SourceError | None = None

    def batches(self, size: int = 1000) -> Iterator[list[list[str | None]]]:
        """Lists of at most ``size`` rows (fewer when the rows are large), until the file ends.

        Every row before a faulty one is yielded first; then SourceError is raised.
        """
        raise NotImplementedError

    def position(self) -> int:
        """Bytes of the file read so far (ahead of the rows yielded by a buffer); the file's size at the end."""
        return self._raw.consumed

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> RowSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _decoding_error(self, exc: UnicodeDecodeError) -> SourceError:
        offset = self._raw.consumed - len(exc.object) + exc.start
        name = self.options.encoding.upper().removesuffix("-SIG")
        return SourceError(f"The file is not valid {name} at byte {offset:,}; choose its encoding.")


def open_rows(path: Path, options: SourceOptions) -> RowSource:
    """A RowSource reading ``path`` as ``options`` say. The header (or the JSON keys) is read at once: errors in
    it, an empty file and a file without rows raise SourceError here."""
    _check_options(options)
    with path.open("rb") as file:
        head = file.read(SAMPLE_BYTES)
    _refuse_binary(head)
    _refuse_markup(codecs.getincrementaldecoder(options.encoding)(errors="replace").decode(head))
    raw = _CountingReader(io.FileIO(path, "rb"))
    text = io.TextIOWrapper(raw, encoding=options.encoding, errors="strict", newline="")
    kind = {"csv": _CsvSource, "json": _JsonArraySource, "jsonl": _JsonLinesSource}[options.format]
    try:
        return kind(raw, text, options)
    except BaseException:
        text.close()
        raise


def sample(path: Path, options: SourceOptions, rows: int = 1000) -> tuple[list[str], list[list[str | None]]]:
    """The columns and the first ``rows`` rows of ``path`` (for a preview and for inference); SourceError when
    the file cannot be read as ``options`` say, up to those rows."""
    out: list[list[str | None]] = []
    with open_rows(path, options) as source:
        batches = source.batches(rows)
        try:
            for batch in batches:
                out.extend(batch)
                if len(out) >= rows:
                    break
        finally:
            batches.close()
        return source.columns, out[:rows]


# --- CSV ----------------------------------------------------------------------------------------------------------
def _lines(text: TextIO, limit: int) -> Iterator[str]:
    """The file's lines for csv.reader, each checked for its length and for NUL characters."""
    readline = text.readline
    first = True
    while True:
        line = readline(limit + 1)
        if not line:
            return
        if first:
            line, first = line.removeprefix("\ufeff"), False
        if len(line) > limit:
            raise SourceError(f"A line is longer than {_size(limit)} (the limit for one line).")
        if "\x00" in line:
            raise SourceError("The file holds a NUL character: it is not a text file in this encoding; choose its "
                              "encoding, or save the data as CSV again.")
        yield line


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count:,} fields"


def _is_blank(row: list[str], width: int) -> bool:
    """A blank line (skipped): no field, or only white space where a row has several fields."""
    return not row or (width > 1 and len(row) == 1 and not row[0].strip())


class _CsvSource(RowSource):
    def __init__(self, raw: _CountingReader, text: TextIO, options: SourceOptions) -> None:
        super().__init__(raw, text, options)
        csv.field_size_limit(options.max_record_bytes)  # process-wide; the default is 128 KB
        self._reader = csv.reader(_lines(text, options.max_record_bytes), delimiter=options.delimiter,
                                  quotechar=options.quotechar, strict=True)
        first = self._next_record(None if options.header else 1, 2)
        if first is None:
            raise SourceError("The file is empty.")
        if options.header:
            self.columns = _column_names(first, options.max_columns)
            self._pending = self._next_record(1, len(self.columns))
            if self._pending is None:
                raise SourceError("The file has a header but no rows.")
        else:
            if len(first) > options.max_columns:
                raise SourceError(f"The file has {len(first):,} columns; at most {options.max_columns:,} can be "
                                  "imported.")
            self.columns = [f"column_{number}" for number in range(1, len(first) + 1)]
            self._pending = first
        self._width = len(self.columns)

    def _next_record(self, row: int | None, width: int) -> list[str] | None:
        try:
            for record in self._reader:
                if not _is_blank(record, width):
                    return record
        except (csv.Error, SourceError, UnicodeDecodeError) as exc:
            raise self._error(exc, row) from None
        return None

    def _error(self, exc: Exception, row: int | None) -> SourceError:
        # A line refused by _lines was not handed to the reader yet; csv's own errors come after it took the line.
        line = self._reader.line_num + (1 if isinstance(exc, SourceError) else 0)
        if isinstance(exc, UnicodeDecodeError):
            return self._decoding_error(exc)
        if isinstance(exc, SourceError):
            message = exc.message
        else:
            reason = str(exc)
            if reason.startswith("field larger than field limit"):
                message = f"A field is longer than {_size(self.options.max_record_bytes)} (the limit for one field)."
            elif reason == "unexpected end of data":
                message = (f"A quoted field is not closed (its closing {self.options.quotechar} is missing) before "
                           "the end of the file.")
            elif "expected after" in reason:
                message = (f"A quote character ({self.options.quotechar}) inside a quoted field must be doubled; "
                           "or choose another quote character.")
            else:
                message = f"This is not readable as CSV ({reason})."
        where = "The header" if row is None else f"Row {row:,}"
        return SourceError(f"{where} (line {line:,}): {message}", row=row, line=line)

    def batches(self, size: int = 1000) -> Iterator[list[list[str | None]]]:
        if size < 1:
            raise ValueError("size must be positive")
        reader, raw, width = self._reader, self._raw, self._width
        budget = self.options.batch_bytes
        step = min(size, _STEP)
        ended = False
        while not ended and self._failed is None:
            batch: list[list[str]] = [self._pending] if self._pending is not None else []
            self._pending = None
            mark = raw.consumed
            try:
                while len(batch) < size:
                    wanted = min(step, size - len(batch))
                    before = len(batch)
                    batch.extend(itertools.islice(reader, wanted))  # a failure keeps the rows read before it
                    if len(batch) - before < wanted:
                        ended = True
                        break
                    if raw.consumed - mark > budget:
                        break
            except (csv.Error, SourceError, UnicodeDecodeError) as exc:
                good = [r for r in batch if not _is_blank(r, width)]
                self._failed = self._error(exc, self.row_number + len(good) + 1)
            if set(map(len, batch)) != {width}:
                batch = self._checked(batch)
            if batch:
                self.row_number += len(batch)
                self.line_number = reader.line_num
                yield batch  # type: ignore[misc]  # list[list[str]] is a list[list[str | None]] to the reader
        if self._failed is not None:
            raise self._failed
        self.close()

    def _checked(self, batch: list[list[str]]) -> list[list[str]]:
        """The batch without blank lines, up to its first row of the wrong width (the failure then)."""
        batch = [r for r in batch if not _is_blank(r, self._width)]
        for index, row in enumerate(batch):
            if len(row) != self._width:
                number = self.row_number + index + 1
                against = "the header has" if self.options.header else "the first row has"
                self._failed = SourceError(f"Row {number:,} has {_fields(len(row))}; {against} {self._width:,}.",
                                           row=number)
                return batch[:index]
        return batch


# --- JSON ---------------------------------------------------------------------------------------------------------
class _Number(str):
    """A JSON number's exact text (the decoder hands it over instead of a float)."""


_DECODER = json.JSONDecoder(parse_float=_Number, parse_int=_Number, parse_constant=_Number)


def _compact(value: Any) -> str:
    """A nested JSON value as compact JSON text, numbers exactly as they were written."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _compact(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(map(_compact, value)) + "]"
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "null" if value is None else ("true" if value else "false")


def _cell(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return value
    if kind is _Number:
        return str(value)  # a plain str: drivers look types up exactly
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    return _compact(value)


@dataclass
class _Record:
    value: Any
    chars: int
    line: int | None = None


class _JsonSource(RowSource):
    """What JSON arrays and JSON Lines share: the columns from the first objects' keys, and rows from objects."""

    def _start(self) -> None:
        self._lookahead = collections.deque()
        keys: dict[str, None] = {}
        chars = 0
        self._deferred: SourceError | None = None
        while len(self._lookahead) < self.options.key_sample_rows and chars <= self.options.batch_bytes:
            try:
                record = self._read(len(self._lookahead) + 1)
            except SourceError as exc:
                if not self._lookahead:
                    raise
                self._deferred = exc  # raised once the rows before it are yielded
                break
            if record is None:
                break
            self._lookahead.append(record)
            chars += record.chars
            keys.update(dict.fromkeys(record.value))
            if len(keys) > self.options.max_columns:
                raise SourceError(f"The objects have more than {self.options.max_columns:,} different fields; at most "
                                  f"{self.options.max_columns:,} columns can be imported.")
        if not self._lookahead:
            raise SourceError("The file has no rows.")
        self._keys = list(keys)
        self._key_set = frozenset(keys)
        self.columns = _column_names(self._keys, self.options.max_columns)
        self.sampled = len(self._lookahead)

    def _read(self, row: int) -> _Record | None:
        raise NotImplementedError

    def batches(self, size: int = 1000) -> Iterator[list[list[str | None]]]:
        if size < 1:
            raise ValueError("size must be positive")
        keys, key_set, budget = self._keys, self._key_set, self.options.batch_bytes
        ended = False
        while not ended and self._failed is None:
            batch: list[list[str | None]] = []
            chars = 0
            while len(batch) < size and chars <= budget:
                number = self.row_number + len(batch) + 1
                try:
                    if self._lookahead:
                        record = self._lookahead.popleft()
                    elif self._deferred is not None:
                        raise self._deferred
                    else:
                        record = self._read(number)
                except SourceError as exc:
                    self._failed = exc
                    break
                if record is None:
                    ended = True
                    break
                value = record.value
                if not key_set.issuperset(value):
                    unknown = next(k for k in value if k not in key_set)
                    self._failed = SourceError(
                        f'Row {number:,} has the field "{unknown}", which the first {self.sampled:,} rows do not '
                        "have: put the rows with every field first, or add the field to the first row.",
                        row=number, line=record.line)
                    break
                try:
                    batch.append([_cell(value.get(k)) for k in keys])
                except RecursionError:  # the decoder nests deeper than _compact can
                    self._failed = SourceError(f"Row {number:,} nests values too deeply.", row=number,
                                               line=record.line)
                    break
                chars += record.chars
                self.line_number = record.line
            if batch:
                self.row_number += len(batch)
                yield batch
        if self._failed is not None:
            raise self._failed
        self.close()


class _JsonArraySource(_JsonSource):
    """A JSON array of objects, read an object at a time with raw_decode from a growing text buffer."""

    def __init__(self, raw: _CountingReader, text: TextIO, options: SourceOptions) -> None:
        super().__init__(raw, text, options)
        self._buffer, self._at, self._eof, self._first_read = "", 0, False, True
        self._state = "start"  # start -> items -> done
        self._start()

    def _fill(self, wanted: int) -> bool:
        """Append at least ``wanted`` characters unless the file ends (False then)."""
        if self._eof:
            return False
        try:
            data = self._text.read(wanted)
        except UnicodeDecodeError as exc:
            raise self._decoding_error(exc) from None
        if not data:
            self._eof = True
            return False
        if self._first_read:
            data, self._first_read = data.removeprefix("\ufeff"), False
        self._buffer = self._buffer[self._at:] + data
        self._at = 0
        return True

    def _next_char(self) -> str:
        """The next character that is not white space (not consumed); "" at the end of the file."""
        while True:
            match = _WHITESPACE.match(self._buffer, self._at)
            self._at = match.end() if match else self._at
            if self._at < len(self._buffer):
                return self._buffer[self._at]
            if not self._fill(self.options.chunk_chars):
                return ""

    def _read(self, row: int) -> _Record | None:
        if self._state == "done":
            return None
        char = self._next_char()
        if self._state == "start":
            if not char:
                raise SourceError("The file is empty.")
            if char != "[":
                what = "one JSON object" if char == "{" else "not a JSON array"
                raise SourceError(f"The file is {what}: a JSON file must be an array of objects ([{{...}}, {{...}}]); "
                                  "choose JSON Lines if it has one object per line.")
            self._at += 1
            self._state = "items"
            char = self._next_char()
            if char == "]":
                return self._end()
        else:
            if char == "]":
                return self._end()
            if char != ",":
                if not char:
                    raise SourceError(f"The file ends after row {row - 1:,} before the array is closed with ].",
                                      row=row)
                raise SourceError(f"After row {row - 1:,}, a comma or the closing ] is missing.", row=row)
            self._at += 1
            char = self._next_char()
        if char != "{":
            if char in ("]", ""):
                raise SourceError(f"Row {row:,} is missing: the array has a comma too many or ends early.", row=row)
            raise SourceError(f"Row {row:,} is not an object: a JSON file must be an array of objects "
                              '({"column": value, ...}).', row=row)
        return self._decode(row)

    def _decode(self, row: int) -> _Record:
        limit = self.options.max_record_bytes
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._at)
                break
            except json.JSONDecodeError as exc:
                pending = len(self._buffer) - self._at
                if pending > limit:
                    raise SourceError(f"Row {row:,} is larger than {_size(limit)} (the limit for one record).",
                                      row=row) from None
                if not self._fill(max(self.options.chunk_chars, pending)):  # doubling: linear time for big rows
                    raise SourceError(f"Row {row:,} is not valid JSON: {exc.msg}.", row=row) from None
            except RecursionError:
                raise SourceError(f"Row {row:,} nests values too deeply.", row=row) from None
        chars = end - self._at
        if chars > limit:
            raise SourceError(f"Row {row:,} is larger than {_size(limit)} (the limit for one record).", row=row)
        self._at = end
        return _Record(value, chars)

    def _end(self) -> None:
        self._at += 1
        self._state = "done"
        if self._next_char():
            raise SourceError("There is more text after the end of the JSON array.")
        return None


class _JsonLinesSource(_JsonSource):
    """One JSON object per line; blank lines are skipped (and not counted as rows)."""

    def __init__(self, raw: _CountingReader, text: TextIO, options: SourceOptions) -> None:
        super().__init__(raw, text, options)
        self._line = 0
        self._start()

    def _read(self, row: int) -> _Record | None:
        limit = self.options.max_record_bytes
        while True:
            try:
                line = self._text.readline(limit + 1)
            except UnicodeDecodeError as exc:
                raise self._decoding_error(exc) from None
            if not line:
                return None
            self._line += 1
            if self._line == 1:
                line = line.removeprefix("\ufeff")
            if len(line) > limit:
                raise SourceError(f"Line {self._line:,} is longer than {_size(limit)} (the limit for one record).",
                                  row=row, line=self._line)
            if line.isspace():
                continue
            try:
                value = _DECODER.decode(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"Line {self._line:,} is not valid JSON: {exc.msg}.", row=row,
                                  line=self._line) from None
            except RecursionError:
                raise SourceError(f"Line {self._line:,} nests values too deeply.", row=row, line=self._line) from None
            if type(value) is not dict:
                raise SourceError(f"Line {self._line:,} is not a JSON object: JSON Lines files have one object "
                                  '({"column": value, ...}) per line.', row=row, line=self._line)
            return _Record(value, len(line), self._line)


__all__ = ["DELIMITERS", "ENCODINGS", "FORMATS", "Detected", "RowSource", "SourceError", "SourceOptions", "detect",
           "open_rows", "sample"]
