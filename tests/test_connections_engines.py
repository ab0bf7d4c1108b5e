"""Engines: structured connection parameters (T23), no LOCAL INFILE (T23), TLS options (T29), the per-process cache.

PostgreSQL and MariaDB tests talk to the real test servers (DESIGN.md, 'Test services').
"""

from __future__ import annotations

import ipaddress
import socket
import sqlite3
import ssl
import threading
import uuid
from pathlib import Path

import psycopg
import pymysql
import pytest
from psycopg import sql
from pymysql.constants import CLIENT
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from bastion.connections import engines
from bastion.connections.engines import (
    POOL_SIZE,
    build_engine,
    dispose_engine,
    get_engine,
    mysql_tls_arguments,
    postgresql_tls_arguments,
)
from bastion.connections.errors import ConnectionDisabled
from bastion.connections.models import Connection
from bastion.tls import make_self_signed
from tests.conftest import in_ci
from tests.services import reachable

PG = {"engine": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres",
      "tls_mode": "disable"}
MY = {"engine": "mysql", "host": "127.0.0.1", "port": 3306, "database": "test", "username": "root",
      "tls_mode": "disable"}
# Each would connect somewhere else (or with other options) if it were pasted into a DSN.
HOSTILE_NAMES = [
    "test host=127.0.0.1 dbname=postgres",
    "test' dbname='postgres",
    "test?sslmode=disable&dbname=postgres",
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "dbname=postgres",
]


def need(service: str) -> None:
    if not reachable(service):
        if in_ci():
            pytest.fail(f"the {service} test server is not reachable and CI is set")
        pytest.skip(f"the {service} test server is not reachable")


@pytest.fixture
def postgres() -> None:
    need("postgresql")


@pytest.fixture
def mariadb() -> None:
    need("mariadb")


def one_shot(**fields):
    return build_engine(Connection(name="t", **fields), password="", pooled=False)


# --- T23: parameters are structured, never a DSN ------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_T23_postgresql_database_name_is_a_literal_name(postgres, name):
    engine = one_shot(**{**PG, "database": name})
    with pytest.raises(sa_exc.OperationalError) as caught:
        engine.connect()
    assert f'database "{name}" does not exist' in str(caught.value.orig)


def test_T23_a_postgresql_database_named_like_a_connection_string_is_reached(postgres):
    name = f"bt{uuid.uuid4().hex[:8]} host=evil dbname=postgres ?sslmode=disable"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            engine = one_shot(**{**PG, "database": name})
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_database()")).scalar_one() == name
            engine.dispose()
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("name", ["test host=evil", "test?local_infile=1", "test;drop database test"])
def test_T23_mysql_database_name_is_a_literal_name(mariadb, name):
    engine = one_shot(**{**MY, "database": name})
    with pytest.raises(sa_exc.OperationalError) as caught:
        engine.connect()
    assert f"Unknown database '{name}'" in str(caught.value.orig)


def test_T23_postgresql_connects_to_the_vetted_address(postgres):
    engine = one_shot(**{**PG, "host": "localhost"})
    with engine.connect() as conn:
        info = conn.connection.dbapi_connection.info
        assert info.host == "localhost"  # the name, kept for certificate checks
        assert info.hostaddr in {"127.0.0.1", "::1"}  # the address netguard vetted
    engine.dispose()


def test_T23_mysql_load_data_local_is_off_in_the_driver(mariadb, tmp_path):
    leaked = tmp_path / "leak.csv"
    leaked.write_text("a line of a local file\n")
    engine = one_shot(**MY)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert not raw.client_flag & CLIENT.LOCAL_FILES
        conn.execute(text("CREATE TEMPORARY TABLE leak (line TEXT)"))
        with pytest.raises(sa_exc.DBAPIError):
            conn.execute(text("LOAD DATA LOCAL INFILE :path INTO TABLE leak"), {"path": str(leaked)})
        assert conn.execute(text("SELECT COUNT(*) FROM leak")).scalar_one() == 0
    engine.dispose()


# --- T29: TLS options --------------------------------------------------------------------------
@pytest.fixture
def pki(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, ["db.example"])
    return str(cert), str(key)


def test_T29_postgresql_tls_modes_map_to_libpq(pki):
    cert, key = pki
    assert postgresql_tls_arguments(Connection(tls_mode="disable")) == {"sslmode": "disable"}
    assert postgresql_tls_arguments(Connection(tls_mode="require")) == {
        "sslmode": "require", "ssl_min_protocol_version": "TLSv1.2"}
    assert postgresql_tls_arguments(Connection(tls_mode="verify-full", tls_ca_file=cert, tls_client_cert_file=cert,
                                               tls_client_key_file=key)) == {
        "sslmode": "verify-full", "ssl_min_protocol_version": "TLSv1.2", "sslrootcert": cert,
        "sslcert": cert, "sslkey": key}


def test_T29_mysql_tls_modes_make_tls_mandatory(pki):
    cert, key = pki
    assert mysql_tls_arguments(Connection(tls_mode="disable")) == {"ssl_disabled": True}
    require = mysql_tls_arguments(Connection(tls_mode="require"))["ssl"]
    assert isinstance(require, ssl.SSLContext)  # a context (not a dict) makes PyMySQL refuse plain text
    assert require.verify_mode == ssl.CERT_NONE and require.minimum_version == ssl.TLSVersion.TLSv1_2
    full = mysql_tls_arguments(Connection(tls_mode="verify-full", tls_ca_file=cert, tls_client_cert_file=cert,
                                          tls_client_key_file=key))["ssl"]
    assert full.verify_mode == ssl.CERT_REQUIRED and full.check_hostname
    assert full.minimum_version == ssl.TLSVersion.TLSv1_2


def test_T29_mysql_require_refuses_a_server_without_tls(mariadb):
    with pymysql.connect(host="127.0.0.1", user="root", password="", ssl_disabled=True) as admin, \
            admin.cursor() as cursor:
        cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
        if cursor.fetchone()[1] == "YES":
            pytest.skip("this MariaDB server accepts TLS")
    engine = one_shot(**{**MY, "tls_mode": "require"})
    with pytest.raises(sa_exc.OperationalError, match="SSL is required"):
        engine.connect()


# --- the per-process cache ----------------------------------------------------------------------
@pytest.fixture
def sqlite_connection(db, tmp_path, settings):
    settings.SQLITE_ROOTS = [tmp_path]
    sqlite3.connect(tmp_path / "a.db").execute("CREATE TABLE t (a)").connection.close()
    connection = Connection.objects.create(name="a", engine="sqlite", sqlite_path=str(tmp_path / "a.db"))
    yield connection
    dispose_engine(connection)


def test_one_engine_per_connection_with_a_bounded_pool(sqlite_connection):
    engine = get_engine(sqlite_connection)
    assert get_engine(Connection.objects.get(pk=sqlite_connection.pk)) is engine
    assert engine.pool.size() == POOL_SIZE


def test_an_edit_gives_a_new_engine_and_closes_the_old_pool(sqlite_connection):
    old = get_engine(sqlite_connection)
    with old.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert old.pool.checkedin() == 1
    sqlite_connection.name = "renamed"
    sqlite_connection.save()  # a new updated_at
    new = get_engine(Connection.objects.get(pk=sqlite_connection.pk))
    assert new is not old
    assert old.pool.checkedin() == 0
    dispose_engine(sqlite_connection)
    assert new.pool.checkedin() == 0
    assert get_engine(sqlite_connection) is not new


def test_a_disabled_connection_has_no_engine(sqlite_connection):
    sqlite_connection.enabled = False
    with pytest.raises(ConnectionDisabled):
        get_engine(sqlite_connection)


# --- T23: DNS rebinding with MySQL verify-full ----------------------------------------------------
def tls_server(cert: str, key: str) -> tuple[int, threading.Thread]:
    """A TLS server on 127.0.0.1 that completes one handshake with the certificate given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server.getsockname()[1], thread


def test_T23_mysql_verify_full_connects_to_the_vetted_address_and_checks_the_name(pki, monkeypatch):
    cert, key = pki  # a certificate for db.example
    # "db.example" resolves (once, when vetted) to 127.0.0.1; PyMySQL must not resolve it again.
    vetted = []
    monkeypatch.setattr(engines, "vet_host", lambda host, port=None: vetted.append(host) or
                        [ipaddress.ip_address("127.0.0.1")])
    engine = one_shot(engine="mysql", host="db.example", port=3306, username="u", tls_mode="verify-full",
                      tls_ca_file=cert)
    seen: dict = {}

    def connect(*_cargs, **cparams):
        seen.update(cparams)
        raise pymysql.err.OperationalError(2003, "not connecting in this test")

    monkeypatch.setattr(engine.dialect, "connect", connect)
    with pytest.raises(sa_exc.OperationalError):
        engine.connect()
    assert vetted == ["db.example"] and seen["host"] == "127.0.0.1"
    context = seen["ssl"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname

    # PyMySQL calls ctx.wrap_socket(sock, server_hostname=<its host>), here the address:
    # the certificate is still checked against db.example.
    port, thread = tls_server(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.server_hostname == "db.example"
    thread.join(5)

    # ...and a certificate for another name is refused, whatever address was reached.
    other_cert, other_key = str(pki[0]).replace("cert.pem", "o.pem"), str(pki[1]).replace("key.pem", "ok.pem")
    make_self_signed(Path(other_cert), Path(other_key), ["evil.example"])
    port, thread = tls_server(other_cert, other_key)
    stranger = mysql_tls_arguments(Connection(host="db.example", tls_mode="verify-full", tls_ca_file=other_cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError, match=r"db\.example"):
        stranger["ssl"].wrap_socket(raw, server_hostname="127.0.0.1")
    thread.join(5)


def test_T23_mysql_require_connects_to_the_vetted_address(monkeypatch):
    monkeypatch.setattr(engines, "vet_host", lambda host, port=None: [ipaddress.ip_address("127.0.0.1")])
    engine = one_shot(engine="mysql", host="db.example", port=3306, username="u", tls_mode="require")
    seen: dict = {}

    def connect(*_cargs, **cparams):
        seen.update(cparams)
        raise pymysql.err.OperationalError(2003, "not connecting in this test")

    monkeypatch.setattr(engine.dialect, "connect", connect)
    with pytest.raises(sa_exc.OperationalError):
        engine.connect()
    assert seen["host"] == "127.0.0.1" and seen["local_infile"] is False
