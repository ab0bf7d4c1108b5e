"""Checking a connection's settings before they are saved, with messages keyed by form field.

Engine-specific rules: a SQLite file inside the roots (T22); for servers a host
that netguard accepts (T23), a port, a user, and TLS files that exist, fit
the TLS mode (T29) and have no ':' in their path (libpq would load an OpenSSL
engine named before it). Settings that the chosen engine does not use are cleared,
so a stored row never carries a stale host or certificate path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from bastion.connections.models import Connection, Engine, TlsMode
from bastion.connections.netguard import TargetRefused, vet_host
from bastion.connections.sqlite_guard import SqlitePathRefused, check_sqlite_path

# What an administrator sets; the password is handled apart (it is stored encrypted).
EDITABLE_FIELDS = (
    "name", "engine", "sqlite_path", "host", "port", "database", "username",
    "tls_mode", "tls_ca_file", "tls_client_cert_file", "tls_client_key_file", "enabled",
)
SERVER_FIELDS = ("host", "port", "database", "username", "tls_ca_file", "tls_client_cert_file",
                 "tls_client_key_file")
TLS_FILE_FIELDS = ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file")
# Where a saved password goes: with any of these changed it must be typed again (T30).
# The name and the database name are not among them: they do not change the server.
SERVER_IDENTITY_FIELDS = ("engine", "host", "port", "username", "tls_mode", *TLS_FILE_FIELDS)
# libpq reads "X:Y" as the key Y of the OpenSSL engine X, which it loads (a shared library).
TLS_PATH_COLON = ("A ':' is not allowed in this path: the database driver would read it as an OpenSSL engine "
                  "and key name.")
DEFAULT_PORTS = {Engine.POSTGRESQL: 5432, Engine.MYSQL: 3306}

Errors = dict[str, list[str]]


def apply_fields(connection: Connection, fields: dict[str, Any]) -> None:
    """Copy ``fields`` onto ``connection`` (strings stripped); unknown names are a programming error."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise TypeError(f"not connection settings: {', '.join(unknown)}")
    for name, value in fields.items():
        if name == "port" and value in ("", None):
            value = None
        setattr(connection, name, value.strip() if isinstance(value, str) else value)


def server_identity(connection: Connection) -> tuple[str, ...]:
    """The settings that decide which server a password is sent to, compared as text ("5432" is 5432)."""
    return tuple(str(getattr(connection, name) or "").strip() for name in SERVER_IDENTITY_FIELDS)


def validate(connection: Connection) -> None:
    """Check and normalise ``connection`` in place; raises ValidationError({field: [messages]})."""
    errors: Errors = {}
    try:
        # The model's own rules: choices, lengths, types, a unique name.
        connection.full_clean(exclude=["password_encrypted", "created_by"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if connection.engine == Engine.SQLITE:
        _validate_sqlite(connection, errors)
    elif connection.engine in DEFAULT_PORTS:
        _validate_server(connection, errors)
    if errors:
        raise ValidationError(errors)


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _validate_sqlite(connection: Connection, errors: Errors) -> None:
    try:
        connection.sqlite_path = str(check_sqlite_path(connection.sqlite_path))
    except SqlitePathRefused as exc:
        _add(errors, "sqlite_path", str(exc))
    for name in SERVER_FIELDS:
        setattr(connection, name, None if name == "port" else "")
    connection.tls_mode = TlsMode.DISABLE


def _validate_server(connection: Connection, errors: Errors) -> None:
    connection.sqlite_path = ""
    if connection.port is None:
        connection.port = DEFAULT_PORTS[Engine(connection.engine)]
    try:
        port_ok = 1 <= int(connection.port) <= 65535
    except (TypeError, ValueError):
        port_ok = False
    if not port_ok:
        _add(errors, "port", "The port must be a number from 1 to 65535.")
    try:
        vet_host(connection.host, connection.port if port_ok else None)
    except TargetRefused as exc:
        _add(errors, "host", str(exc))
    if not connection.username:
        _add(errors, "username", "A user name is required.")
    if connection.engine == Engine.POSTGRESQL and not connection.database:
        _add(errors, "database", "A database name is required.")
    _validate_tls(connection, errors)


def _validate_tls(connection: Connection, errors: Errors) -> None:
    mode = connection.tls_mode
    if mode == TlsMode.DISABLE:
        for name in TLS_FILE_FIELDS:
            if getattr(connection, name):
                _add(errors, name, "TLS is off for this connection; remove the file or choose a TLS mode.")
    if mode == TlsMode.REQUIRE and connection.tls_ca_file:
        _add(errors, "tls_ca_file", "A CA file is only used to verify the server: choose verify-full, "
                                    "or remove the file.")
    if mode == TlsMode.VERIFY_FULL and not connection.tls_ca_file:
        _add(errors, "tls_ca_file", "Verify-full needs the CA certificate that signed the server's certificate.")
    if bool(connection.tls_client_cert_file) != bool(connection.tls_client_key_file):
        missing = "tls_client_key_file" if connection.tls_client_cert_file else "tls_client_cert_file"
        _add(errors, missing, "A client certificate and its private key go together: give both or neither.")
    for name in TLS_FILE_FIELDS:
        value = getattr(connection, name)
        if value:
            problem = _file_problem(value)
            if problem:
                _add(errors, name, problem)


def _file_problem(value: str) -> str | None:
    if ":" in value:
        return TLS_PATH_COLON
    path = Path(value)
    if not path.is_absolute():
        return "Give the full path of the file."
    if not path.is_file():
        return f"There is no file at {path}."
    if not os.access(path, os.R_OK):
        return f"Bastion cannot read {path}."
    return None
