"""`bastion import-users`: users from an older system, keeping their password hashes (T12).

The file is CSV (a header line) or JSON (an array of objects), UTF-8, with the fields:

- ``username`` (required), ``email`` (optional), ``role`` (optional: the name of an existing role);
- ``password_hash`` (required) and ``format`` (required unless ``--format`` gives a default);
- ``salt`` (optional, for the salted formats when the salt is kept apart from the hash).

Formats and the hash shapes they accept (hex digits in either case):

- ``md5``: md5(password), as ``<32 hex>`` or ``md5$$<32 hex>``;
- ``sha1``: sha1(password), as ``<40 hex>`` or ``sha1$$<40 hex>``;
- ``salted_sha1``: sha1(salt + password), as ``<40 hex>`` with a ``salt`` field, ``<salt>$<40 hex>``
  or ``sha1$<salt>$<40 hex>``; ``salted_md5``: the same with md5 and 32 hex digits;
- ``bcrypt``: ``$2a$``/``$2b$``/``$2y$`` hashes (60 characters) or ``bcrypt$<that>``; needs the
  ``bcrypt`` Python package;
- ``django``: a hash as Django stores it (``pbkdf2_sha256$...``, ``pbkdf2_sha1$...``, ``argon2$...``,
  ``scrypt$...``, ``bcrypt_sha256$...``, ``bcrypt$...``, and Django's MD5/SHA1 forms).

Each hash is stored in the Django encoding of the hasher that verifies it (bastion.accounts.legacy_hashers);
users keep their passwords. The import is all or nothing (one transaction): a bad row, or a
username that exists already (compared ignoring case, as the login does), refuses the whole file
with the row and the reason. The file is read as a stream, a thousand rows at a time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import (
    BCryptSHA256PasswordHasher,
    get_hasher,
    identify_hasher,
    is_password_usable,
)
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Lower

from bastion.accounts.legacy_hashers import WEAK_ALGORITHMS, WRAPPED_ALGORITHMS, canonical
from bastion.audit.services import record

# The salt is kept in front of the Argon2 hash that wraps it; this keeps that within the password column.
MAX_SALT = 64
FIELDS = ("username", "email", "password_hash", "format", "salt", "role")
REQUIRED = ("username", "password_hash")
DIGEST_FORMATS = {"md5": "unsalted_md5", "sha1": "unsalted_sha1", "salted_md5": "md5", "salted_sha1": "sha1"}
FORMATS = (*DIGEST_FORMATS, "bcrypt", "django")
DJANGO_ALGORITHMS = frozenset({"pbkdf2_sha256", "pbkdf2_sha1", "argon2", "scrypt", "bcrypt_sha256", "bcrypt",
                               *WEAK_ALGORITHMS, *WRAPPED_ALGORITHMS})
BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
CHUNK_ROWS = 1000
MAX_ERRORS = 20
JSON_READ_CHARS = 1 << 16
MAX_RECORD_CHARS = 1 << 16

Progress = Callable[[int, float], None]
"""Called after each chunk with (rows read, fraction of the file read)."""


class ImportRefused(Exception):
    """The file was refused; nothing was imported. ``errors`` name the rows and the reasons."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class ImportResult:
    created: int = 0
    skipped: int = 0
    formats: Counter = field(default_factory=Counter)
    roles: Counter = field(default_factory=Counter)
    seconds: float = 0.0


# --- hashes -------------------------------------------------------------------------------
def normalise(fmt: str, password_hash: str, salt: str = "") -> str:
    """The Django encoding of a legacy hash; ValueError with the reason if its shape is wrong."""
    value = password_hash.strip()
    if not value:
        raise ValueError("the password hash is empty")
    if fmt in DIGEST_FORMATS:
        return _digest(get_hasher(DIGEST_FORMATS[fmt]), value, salt)
    if salt:
        raise ValueError(f"format {fmt} takes no separate salt")
    if fmt == "bcrypt":
        raw = value.removeprefix("bcrypt$")
        if not BCRYPT.fullmatch(raw):
            raise ValueError("not a bcrypt hash ($2a$, $2b$ or $2y$, cost, then 53 characters)")
        return _loadable(f"bcrypt${raw}", get_hasher("bcrypt"))
    if fmt == "django":
        return _django(value)
    raise ValueError(f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def _digest(hasher: Any, value: str, salt: str) -> str:
    prefix = hasher.prefix
    if "$" in salt:
        raise ValueError("the salt contains '$'")
    if value.startswith(f"{prefix}$") and value.count("$") == 2:
        encoded = value  # Django's form: <prefix>$<salt>$<hex>
    elif "$" in value:
        encoded = f"{prefix}${value}"  # <salt>$<hex>
    else:
        encoded = f"{prefix}${salt}${value}"
        salt = ""
    if salt:
        raise ValueError("the salt is given twice (in the salt field and in the hash)")
    if len(encoded.split("$")[1]) > MAX_SALT:
        raise ValueError(f"the salt is longer than {MAX_SALT} characters")
    return canonical(hasher, encoded)


def _django(value: str) -> str:
    if not is_password_usable(value):
        raise ValueError("an unusable password (starts with '!') cannot be imported")
    try:
        hasher = identify_hasher(value)
    except ValueError:
        raise ValueError("not a Django password hash of an enabled hasher") from None
    if hasher.algorithm not in DJANGO_ALGORITHMS:
        raise ValueError(f"hashes of algorithm {hasher.algorithm!r} cannot be imported")
    if hasher.algorithm in WEAK_ALGORITHMS:
        return canonical(hasher, value)
    try:
        hasher.safe_summary(value)  # decodes every field
    except Exception:  # each hasher fails on malformed input its own way
        raise ValueError(f"a malformed {hasher.algorithm} hash") from None
    return _loadable(value, hasher)


def _loadable(encoded: str, hasher: Any) -> str:
    if not hasher.library:  # PBKDF2, scrypt: the standard library
        return encoded
    try:
        hasher._load_library()
    except ValueError:
        package = "bcrypt" if isinstance(hasher, BCryptSHA256PasswordHasher) else hasher.library
        raise ValueError(f"{hasher.algorithm} hashes need the Python package {package!r}, which is not installed "
                         f"(pip install {package})") from None
    return encoded


# --- reading ------------------------------------------------------------------------------
def _csv_records(text: IO[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(text)
    header = reader.fieldnames or []
    unknown = [name for name in header if name not in FIELDS]
    missing = [name for name in REQUIRED if name not in header]
    if unknown or missing:
        raise ImportRefused([f"line 1: the header must name the columns {', '.join(FIELDS)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                             + (f"; missing: {', '.join(missing)}" if missing else "")])
    for row in reader:
        yield f"line {reader.line_num}", row


class _JsonArray:
    """The objects of a JSON array, decoded one at a time from a stream (memory: one record)."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text
        self.buf = ""
        self.pos = 0
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        chunk = self.text.read(JSON_READ_CHARS)
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return bool(chunk)

    def _peek(self) -> str:
        """The next character that is not whitespace ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _expect(self, allowed: str) -> str:
        char = self._peek()
        if not char or char not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)} (the file must be a JSON array of objects)")
        self.pos += 1
        return char

    def _value(self) -> Any:
        self._peek()
        while True:
            try:
                value, self.pos = self.decoder.raw_decode(self.buf, self.pos)
                return value
            except json.JSONDecodeError:
                if len(self.buf) - self.pos > MAX_RECORD_CHARS or not self._more():
                    raise ValueError(f"not valid JSON, or a record longer than {MAX_RECORD_CHARS} characters") \
                        from None

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        self._expect("[")
        number = 0
        if self._peek() == "]":
            self.pos += 1
        else:
            while True:
                number += 1
                yield f"record {number}", self._value()
                if self._expect(",]") == "]":
                    break
        if self._peek():
            raise ValueError("text after the closing ]")


def _refusing(records: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """A file that cannot be read on (bad JSON, bad CSV quoting, not UTF-8) refuses the import."""
    where = "the start of the file"
    try:
        for where, value in records:  # where: the place named if reading fails later
            yield where, value
    except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise ImportRefused([f"after {where}: {exc}"]) from None


def read_records(path: Path, binary: IO[bytes]) -> Iterator[tuple[str, Any]]:
    """(where, record) pairs: "line 3" of a CSV file, "record 2" of a JSON one."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    if path.suffix.lower() == ".json":
        return _refusing(iter(_JsonArray(text)))
    if path.suffix.lower() == ".csv":
        return _refusing(_csv_records(text))
    raise ImportRefused([f"{path.name}: the file name must end in .csv or .json"])


# --- rows ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Row:
    number: int  # the record's place in the file, to report errors in file order
    where: str
    username: str
    email: str
    password: str
    fmt: str
    role: str


def _text(entry: dict[str, Any], name: str, strip: bool = True) -> str:
    value = entry.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    return value.strip() if strip else value


def _parse(number: int, where: str, entry: Any, roles: dict[str, Group], default_format: str) -> _Row:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    if None in entry:  # csv.DictReader's key for values beyond the header's columns
        raise ValueError("more values than the header has columns")
    unknown = sorted(str(key) for key in entry if key not in FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    username = _text(entry, "username")
    if not username:
        raise ValueError("the username is empty")
    User = get_user_model()
    try:
        User._meta.get_field("username").run_validators(username)
    except ValidationError as exc:
        raise ValueError(f"username {username!r}: {' '.join(exc.messages)}") from None
    email = _text(entry, "email")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValueError(f"{email!r} is not an e-mail address") from None
    role = _text(entry, "role")
    if role and role.lower() not in roles:
        raise ValueError(f"there is no role {role!r}")
    fmt = _text(entry, "format").lower() or default_format
    if not fmt:
        raise ValueError("the format is empty (give a format column or --format)")
    password = normalise(fmt, _text(entry, "password_hash"), _text(entry, "salt", strip=False))
    return _Row(number, where, username, email, password, fmt, role.lower())


# --- the import ---------------------------------------------------------------------------
class _Importer:
    def __init__(self, skip_existing: bool) -> None:
        self.User = get_user_model()
        self.skip_existing = skip_existing
        self.roles = {group.name.lower(): group for group in Group.objects.all()}
        self.last_pk_before = self.User.objects.aggregate(last=Max("pk"))["last"] or 0
        self.result = ImportResult()
        self.errors: list[tuple[int, str]] = []

    def error(self, number: int, text: str) -> None:
        self.errors.append((number, text))
        if len(self.errors) >= MAX_ERRORS:
            self.refuse(f"(stopped after {MAX_ERRORS} errors)")

    def refuse(self, *more: str) -> None:
        raise ImportRefused([text for _, text in sorted(self.errors)] + list(more))

    def flush(self, rows: list[_Row]) -> None:
        """Check a chunk's names against the database (and each other), then insert it if all is well."""
        taken = dict(self.User.objects.annotate(name=Lower("username"))
                     .filter(name__in=[row.username.lower() for row in rows]).values_list("name", "pk"))
        fresh: list[_Row] = []
        seen: set[str] = set()
        for row in rows:
            name = row.username.lower()
            pk = taken.get(name)
            if name in seen or (pk is not None and pk > self.last_pk_before):
                self.error(row.number, f"{row.where}: the username {row.username!r} appears twice in the file")
            elif pk is not None and self.skip_existing:
                self.result.skipped += 1
            elif pk is not None:
                self.error(row.number,
                           f"{row.where}: a user named {row.username!r} exists already (or use --skip-existing)")
            else:
                fresh.append(row)
            seen.add(name)
        if not self.errors:
            self.insert(fresh)

    def insert(self, rows: list[_Row]) -> None:
        self.User.objects.bulk_create(
            [self.User(username=row.username, email=row.email, password=row.password) for row in rows])
        with_role = {row.username: row.role for row in rows if row.role}
        if with_role:
            Membership = self.User.groups.through
            pks = self.User.objects.filter(username__in=with_role).values_list("username", "pk")
            Membership.objects.bulk_create(
                [Membership(user_id=pk, group_id=self.roles[with_role[name]].pk) for name, pk in pks])
        self.result.created += len(rows)
        self.result.formats.update(row.fmt for row in rows)
        self.result.roles.update(self.roles[row.role].name for row in rows if row.role)


def import_users(path: Path, *, skip_existing: bool = False, default_format: str = "",
                 on_progress: Progress | None = None) -> ImportResult:
    """Import every user of the file, or none (ImportRefused). One audit event for the import."""
    started = time.monotonic()
    with path.open("rb") as binary, transaction.atomic():
        size = os.fstat(binary.fileno()).st_size or 1
        importer = _Importer(skip_existing)
        chunk: list[_Row] = []
        read = 0
        for where, entry in read_records(path, binary):
            read += 1
            try:
                chunk.append(_parse(read, where, entry, importer.roles, default_format))
            except ValueError as exc:
                importer.error(read, f"{where}: {exc}")
            if len(chunk) >= CHUNK_ROWS:
                importer.flush(chunk)
                chunk = []
                if on_progress:
                    on_progress(read, binary.tell() / size)
        importer.flush(chunk)
        if importer.errors:
            importer.refuse()
        if on_progress:
            on_progress(read, 1.0)
        result = importer.result
        if result.created:
            record("user.imported", target=path.name, details={
                "created": result.created, "skipped_existing": result.skipped,
                "formats": dict(result.formats), "roles": dict(result.roles)})
    result.seconds = time.monotonic() - started
    return result
