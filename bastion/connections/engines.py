"""One pooled SQLAlchemy engine per registered connection, guarded on every connect.

- Connection parameters go to the driver as structured fields (``URL.create``
  and keyword arguments), never through a DSN string, so a database name such
  as ``x host=evil`` or ``y?sslmode=disable`` is just a name (T23).
- Network targets are vetted by netguard on every new DBAPI connection, and
  the driver is pointed at the vetted address, not at a fresh DNS answer (T23).
- SQLite files are re-checked against the roots and opened read-write without
  create; every connection gets the authorizer (T22).
- MySQL LOAD DATA LOCAL is off in the driver (T23); TLS settings map to the
  driver's own options, TLS 1.2 at least (T29).

Engines are cached per process and keyed by the connection's ``updated_at``,
so an edit (in any process) leads to a fresh engine at the next use here.
"""

from __future__ import annotations

import os
import sqlite3
import ssl
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.pool import NullPool, QueuePool

from bastion.connections.crypto import decrypt_secret
from bastion.connections.errors import ConnectionDisabled
from bastion.connections.models import Connection, TlsMode
from bastion.connections.models import Engine as EngineKind
from bastion.connections.netguard import vet_host
from bastion.connections.sqlite_guard import check_sqlite_path, install_authorizer
from bastion.connections.validation import DEFAULT_PORTS, TLS_FILE_FIELDS, TLS_PATH_COLON

POOL_SIZE = 5
MAX_OVERFLOW = 5
POOL_TIMEOUT = 10  # seconds a request waits for a free pooled connection
POOL_RECYCLE = 1800  # seconds; servers and firewalls drop idle connections
CONNECT_TIMEOUT = 10  # seconds per address
SQLITE_BUSY_TIMEOUT = 5.0  # seconds to wait for another writer's lock

_engines: dict[int, tuple[datetime | None, Engine]] = {}
_lock = threading.Lock()


# --- the cache --------------------------------------------------------------------------------
def get_engine(connection: Connection) -> Engine:
    """The shared engine of a saved, enabled connection, built at first use."""
    if not connection.enabled:
        raise ConnectionDisabled(f"The connection {connection.name!r} is disabled.")
    if connection.pk is None:
        raise ValueError("get_engine() needs a saved connection; use build_engine() for a draft")
    version = connection.updated_at
    stale = None
    with _lock:
        cached = _engines.get(connection.pk)
        if cached is not None and (version is None or (cached[0] is not None and cached[0] >= version)):
            return cached[1]
        engine = build_engine(connection)
        _engines[connection.pk] = (version, engine)
        stale = cached[1] if cached is not None else None
    if stale is not None:
        stale.dispose()  # checked-out connections finish their work and are closed at check-in
    return engine


def dispose_engine(connection: Connection) -> None:
    """Drop this process's engine for ``connection`` (after an edit or delete) and close its pool."""
    with _lock:
        cached = _engines.pop(connection.pk, None)
    if cached is not None:
        cached[1].dispose()


def dispose_all() -> None:
    """Close every pool (process shutdown, tests)."""
    with _lock:
        engines = [engine for _version, engine in _engines.values()]
        _engines.clear()
    for engine in engines:
        engine.dispose()


# --- building ---------------------------------------------------------------------------------
def _pool_options(pooled: bool) -> dict[str, Any]:
    if not pooled:
        return {"poolclass": NullPool}
    return {"poolclass": QueuePool, "pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW,
            "pool_timeout": POOL_TIMEOUT, "pool_recycle": POOL_RECYCLE, "pool_pre_ping": True}


def build_engine(connection: Connection, *, password: str | None = None, pooled: bool = True) -> Engine:
    """A new engine for ``connection`` (saved or not); nothing connects until it is used.

    ``password`` overrides the stored one (testing a form before saving it);
    ``pooled=False`` gives a one-shot engine whose connections close at once.
    """
    options = {**_pool_options(pooled), "hide_parameters": True}
    if connection.engine == EngineKind.SQLITE:
        return _sqlite_engine(connection, options)
    if password is None:
        password = decrypt_secret(connection.password_encrypted) if connection.password_encrypted else ""
    if connection.engine == EngineKind.POSTGRESQL:
        return _postgresql_engine(connection, password, options)
    if connection.engine == EngineKind.MYSQL:
        return _mysql_engine(connection, password, options)
    raise ValueError(f"unknown engine {connection.engine!r}")


def _url(drivername: str, connection: Connection, password: str) -> URL:
    return URL.create(
        drivername,
        username=connection.username or None,
        password=password or None,
        host=connection.host,
        port=connection.port or DEFAULT_PORTS[EngineKind(connection.engine)],
        database=connection.database or None,
    )


# --- SQLite -----------------------------------------------------------------------------------
def _sqlite_engine(connection: Connection, options: dict[str, Any]) -> Engine:
    check_sqlite_path(connection.sqlite_path)  # fail early, with the clear message

    def open_file() -> sqlite3.Connection:
        # Checked again for every connection: a symlink swapped since registration is refused.
        path = check_sqlite_path(connection.sqlite_path)
        # as_uri() percent-encodes the path; mode=rw never creates a missing file.
        return sqlite3.connect(path.as_uri() + "?mode=rw", uri=True, timeout=SQLITE_BUSY_TIMEOUT,
                               check_same_thread=False)

    # The URL names only the dialect: the file comes from open_file(). QueuePool is
    # explicit because a file-less URL would otherwise get a per-thread pool.
    engine = create_engine(URL.create("sqlite+pysqlite"), creator=open_file, **options)
    event.listen(engine, "connect", _guard_sqlite, insert=True)
    return engine


def _guard_sqlite(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Before the authorizer, which refuses setting pragmas: enforce foreign keys,
    # and keep functions with side effects out of views and triggers in the file.
    dbapi_connection.execute("PRAGMA foreign_keys = ON")
    dbapi_connection.execute("PRAGMA trusted_schema = OFF")
    install_authorizer(dbapi_connection)


# --- network engines --------------------------------------------------------------------------
def _connect_vetted(connection: Connection, host_param: str,
                    per_connect: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """A do_connect hook: vet the host now, then try the vetted addresses in order.

    ``host_param`` names the driver argument that receives the vetted address;
    certificate checks keep using the name (libpq ``host``, MySQL's TLS context).
    """

    def do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        addresses = vet_host(connection.host, connection.port)
        params = {**cparams, **per_connect()}
        errors: list[Exception] = []
        for address in addresses:  # vet_host returns at least one
            try:
                return dialect.connect(*cargs, **{**params, host_param: str(address)})
            except dialect.loaded_dbapi.OperationalError as exc:
                errors.append(exc)
        raise errors[-1]

    return do_connect


def postgresql_tls_arguments(connection: Connection) -> dict[str, str]:
    """libpq TLS keywords for the connection's TLS mode."""
    for name in TLS_FILE_FIELDS:
        # Validation refuses these; a row saved before that rule must not reach libpq either.
        if ":" in getattr(connection, name):
            raise ValueError(TLS_PATH_COLON)
    if connection.tls_mode == TlsMode.DISABLE:
        return {"sslmode": "disable"}
    args = {"sslmode": "verify-full" if connection.tls_mode == TlsMode.VERIFY_FULL else "require",
            "ssl_min_protocol_version": "TLSv1.2"}
    if connection.tls_mode == TlsMode.VERIFY_FULL:
        args["sslrootcert"] = connection.tls_ca_file
    if connection.tls_client_cert_file:
        args["sslcert"] = connection.tls_client_cert_file
        args["sslkey"] = connection.tls_client_key_file
    return args


def _postgresql_engine(connection: Connection, password: str, options: dict[str, Any]) -> Engine:
    connect_args = {
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "bastion",
        # Never fall back to a ~/.pgpass entry of the account Bastion runs as.
        "passfile": os.devnull,
        **postgresql_tls_arguments(connection),
    }
    engine = create_engine(_url("postgresql+psycopg", connection, password), connect_args=connect_args, **options)
    # hostaddr pins the address; host stays the name, for verify-full.
    event.listen(engine, "do_connect", _connect_vetted(connection, "hostaddr", dict))
    return engine


class NameCheckedContext(ssl.SSLContext):
    """A client TLS context that checks the server certificate against ``server_name``.

    PyMySQL calls ``ctx.wrap_socket(sock, server_hostname=<its host argument>)``;
    that argument is the vetted address (no second DNS lookup, T23), while the
    certificate must still match the name the administrator registered.
    """

    server_name: str = ""

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | None = None,
                    session: Any = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                   self.server_name or server_hostname, session)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | None = None, session: Any = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)


def mysql_tls_arguments(connection: Connection) -> dict[str, Any]:
    """PyMySQL TLS arguments; an SSLContext makes TLS mandatory (a dict would fall back to plain text)."""
    if connection.tls_mode == TlsMode.DISABLE:
        return {"ssl_disabled": True}
    if connection.tls_mode == TlsMode.VERIFY_FULL:
        context: ssl.SSLContext = NameCheckedContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
        context.server_name = connection.host
        context.load_verify_locations(cafile=connection.tls_ca_file)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if connection.tls_client_cert_file:
        context.load_cert_chain(connection.tls_client_cert_file, keyfile=connection.tls_client_key_file or None)
    return {"ssl": context}


def _mysql_engine(connection: Connection, password: str, options: dict[str, Any]) -> Engine:
    from pymysql.constants import CLIENT

    connect_args = {"connect_timeout": CONNECT_TIMEOUT, "local_infile": False, "program_name": "bastion"}
    engine = create_engine(_url("mysql+pymysql", connection, password), connect_args=connect_args, **options)

    def per_connect() -> dict[str, Any]:
        # Built per connection so replaced certificate files are read again.
        return {**mysql_tls_arguments(connection), "local_infile": False}

    # The vetted address, never the name: PyMySQL would resolve the name again (rebinding).
    # With verify-full the TLS context still checks the certificate against the name.
    hook = _connect_vetted(connection, "host", per_connect)

    def do_connect(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        # A server may ask for a client file with LOAD DATA LOCAL even unasked; the
        # capability flag stays off so it cannot (SQLAlchemy or a URL may add flags).
        cparams["client_flag"] = int(cparams.get("client_flag", 0)) & ~CLIENT.LOCAL_FILES
        return hook(dialect, record, cargs, cparams)

    event.listen(engine, "do_connect", do_connect)
    return engine
