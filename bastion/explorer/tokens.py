"""Opaque, tamper-proof tokens for row keys, page cursors and original-row digests.

A token carries database values (a primary key, the sort value of the last row
on a page) through a URL or a hidden field. They are encrypted, not just
signed: a key or sort column may be masked for the user who holds the token
(T31), and a forged cursor must not let anyone probe values by seeking (T01).
The key is derived from SECRET_KEY, so tokens stay valid across restarts and
processes and die with a SECRET_KEY change.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Tokens older than this are refused: bookmarks of a page keep their filters and
# sort (plain URL parameters) and lose only the position inside the table.
MAX_AGE = 30 * 24 * 3600


class BadToken(ValueError):
    """The token was not made by this installation, was altered, or is too old."""


@cache
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"bastion.explorer.tokens",
               info=b"row keys and cursors v1").derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def tag_value(value: Any) -> Any:
    """A JSON form of a database value that keeps its Python type (untag_value reverses it)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"f": repr(value)}  # keeps nan/inf, which JSON cannot
    if isinstance(value, decimal.Decimal):
        return {"d": str(value)}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"da": value.isoformat()}
    if isinstance(value, dt.time):
        return {"t": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    if isinstance(value, list | tuple):
        return {"l": [tag_value(v) for v in value]}
    if isinstance(value, dict):
        return {"o": {str(k): tag_value(v) for k, v in value.items()}}
    return {"s": str(value)}  # anything else (PostgreSQL ranges, tids): its text form


_UNTAG = {
    "f": float,
    "d": decimal.Decimal,
    "dt": dt.datetime.fromisoformat,
    "da": dt.date.fromisoformat,
    "t": dt.time.fromisoformat,
    "td": lambda parts: dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2]),
    "b": lambda text: base64.b64decode(text.encode("ascii"), validate=True),
    "u": uuid.UUID,
    "l": lambda items: [untag_value(v) for v in items],
    "o": lambda items: {k: untag_value(v) for k, v in items.items()},
    "s": str,
}


def untag_value(value: Any) -> Any:
    """The database value a tag_value() result stands for."""
    if not isinstance(value, dict):
        return value
    ((tag, payload),) = value.items()
    return _UNTAG[tag](payload)


URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def seal(purpose: str, values: Any) -> str:
    """An encrypted token holding ``values`` (database values, lists, dicts of them), made only of
    URL_SAFE characters."""
    payload = json.dumps([purpose, tag_value(values)], separators=(",", ":")).encode()
    # Without its base64 padding a token is only [A-Za-z0-9_-]: it goes into a URL as it is.
    return _fernet(settings.SECRET_KEY).encrypt(payload).decode("ascii").rstrip("=")


def unseal(purpose: str, token: str) -> Any:
    """The values inside a token made by seal(purpose, ...); BadToken otherwise."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = _fernet(settings.SECRET_KEY).decrypt(padded.encode("ascii"), ttl=MAX_AGE)
        found, values = json.loads(payload)
        if found != purpose:
            raise BadToken("token made for another purpose")
        return untag_value(values)
    except (InvalidToken, UnicodeError, ValueError, TypeError, KeyError, decimal.InvalidOperation) as exc:
        raise BadToken("invalid token") from exc
