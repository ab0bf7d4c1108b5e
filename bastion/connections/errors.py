"""Turning a failure to reach a target database into a message safe to show (T23, T30, T32).

Upstream text helps an administrator ("database x does not exist", "password
authentication failed"), so it is kept, but as one trimmed line with every
secret removed and no SQL, traceback or driver boilerplate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import psycopg
from cryptography.fernet import InvalidToken
from sqlalchemy import exc as sa_exc

from bastion.connections.netguard import TargetRefused
from bastion.connections.sqlite_guard import SqlitePathRefused

MAX_LENGTH = 300
REDACTED = "********"

# Upstream phrases that deserve a plain explanation instead.
_KNOWN = (
    (re.compile(r"server does not support SSL|SSL is required but the server doesn't support it"
                r"|SSL connection is required|doesn't support SSL", re.IGNORECASE),
     "The server does not accept TLS connections, and this connection requires TLS."),
    (re.compile(r"certificate verify failed|certificate verification failed|root certificate file",
                re.IGNORECASE),
     "The server's TLS certificate could not be verified with the configured CA file."),
    (re.compile(r"unsafe use of"),
     "The file's schema uses a function or virtual table in a view, trigger or constraint that Bastion "
     "does not run there (SQLite trusted_schema is off)"),
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_BOILERPLATE = re.compile(r"\[SQL: .*?\]|\[parameters: .*?\]|\(Background on this error at: [^)]*\)", re.DOTALL)


class ConnectionDisabled(Exception):
    """The connection is switched off by an administrator."""


def _upstream_text(exc: BaseException) -> str:
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        # str(DBAPIError) carries the SQL, its parameters and a link to SQLAlchemy's
        # docs; the driver's own text is what the administrator needs.
        args = exc.orig.args
        if len(args) == 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
            return f"{args[1]} (error {args[0]})"
        return str(exc.orig)
    return _BOILERPLATE.sub(" ", str(exc)).strip() or exc.__class__.__name__


def one_line(text: str, secrets: Iterable[str] = (), limit: int = MAX_LENGTH) -> str:
    """``text`` on one line, secrets replaced, at most ``limit`` characters."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def safe_message(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """A short message for ``exc`` that is safe to show an administrator."""
    secrets = list(secrets)
    if isinstance(exc, TargetRefused | SqlitePathRefused | ConnectionDisabled):
        return one_line(str(exc), secrets)
    if isinstance(exc, InvalidToken):
        return "The stored password cannot be decrypted with the configured encryption keys."
    text = _upstream_text(exc)
    for pattern, message in _KNOWN:
        if pattern.search(text):
            # A sentence without a full stop takes the upstream detail, e.g. "(unsafe use of json_valid())".
            return message if message.endswith(".") else one_line(f"{message}: {text}", secrets)
    if isinstance(exc, TimeoutError):
        return "The server did not answer in time."
    return one_line(text, secrets) or "The connection failed."


def engine_reason(exc: BaseException) -> str:
    """Why the database refused a statement, in one line: PostgreSQL's primary message alone (its LINE,
    HINT and CONTEXT lines quote the SQL), otherwise ``safe_message``."""
    original = getattr(exc, "orig", None)
    if isinstance(original, psycopg.Error) and original.diag.message_primary:
        return one_line(original.diag.message_primary)
    return safe_message(exc)
