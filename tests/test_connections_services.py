"""Registering, testing, editing and deleting connections through the services, against real servers.

Also T30: a password never shows up in audit events, messages, logs or a dump
of the metadata database; T23/T22 validation with field-keyed messages; T29 a
TLS-required connection to a server without TLS fails with a clear message.
"""

from __future__ import annotations

import io
import json
import sqlite3
import uuid

import psycopg
import pymysql
import pytest
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management import call_command
from django.db import connection as metadata_db
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bastion.audit.models import AuditEvent
from bastion.connections.crypto import decrypt_secret
from bastion.connections.engines import build_engine, get_engine
from bastion.connections.errors import ConnectionDisabled, safe_message
from bastion.connections.models import Connection
from bastion.connections.services import (
    create_connection,
    delete_connection,
    set_enabled,
    test_connection,
    update_connection,
)
from bastion.tls import make_self_signed
from tests.conftest import in_ci
from tests.services import reachable

PG = {"engine": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "test", "username": "postgres",
      "tls_mode": "disable"}
MY = {"engine": "mysql", "host": "127.0.0.1", "port": 3306, "database": "test", "tls_mode": "disable"}
TLS_REFUSED = "The server does not accept TLS connections, and this connection requires TLS."


def need(service: str) -> None:
    if not reachable(service):
        if in_ci():
            pytest.fail(f"the {service} test server is not reachable and CI is set")
        pytest.skip(f"the {service} test server is not reachable")


@pytest.fixture
def root(db, tmp_path, settings):
    directory = tmp_path / "databases"
    directory.mkdir()
    settings.SQLITE_ROOTS = [directory]
    settings.TARGET_HOSTS_ALLOWED = []
    return directory


def make_sqlite(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (a INTEGER)")
    db.commit()
    db.close()
    return path


class Events:
    """The audit events written since the fixture started."""

    def __init__(self) -> None:
        last = AuditEvent.objects.order_by("-seq").first()
        self.seen = last.seq if last else 0

    def new(self) -> list[AuditEvent]:
        events = list(AuditEvent.objects.filter(seq__gt=self.seen).order_by("seq"))
        if events:
            self.seen = events[-1].seq
        return events

    def one(self, action: str) -> AuditEvent:
        events = self.new()
        assert [e.action for e in events] == [action]
        return events[0]


@pytest.fixture
def events(db) -> Events:
    return Events()


@pytest.fixture
def mariadb_user():
    """A real MariaDB account with a password, so the stored password is really used."""
    need("mariadb")
    name, password = f"bt_{uuid.uuid4().hex[:10]}", f"My-{uuid.uuid4().hex}"
    with pymysql.connect(host="127.0.0.1", user="root", password="", ssl_disabled=True, autocommit=True) as admin:
        with admin.cursor() as cursor:
            cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password))
            cursor.execute("GRANT SELECT ON test.* TO %s@'%%'", (name,))
        yield name, password
        with admin.cursor() as cursor:
            cursor.execute("DROP USER %s@'%%'", (name,))


# --- the life of a connection, per engine ----------------------------------------------------------
def test_sqlite_register_test_edit_disable_delete(admin, root, events):
    path = make_sqlite(root / "shop.db")
    conn = create_connection(admin, None, name="shop", engine="sqlite", sqlite_path=str(path))
    created = events.one("connection.created")
    assert created.actor == admin.username and created.target == "shop"
    assert created.after["sqlite_path"] == str(path.resolve()) and created.after["has_password"] is False

    result = test_connection(conn)
    assert result.ok and result.message == "Connected." and result.server_version.startswith("SQLite 3.")

    make_sqlite(root / "other.db")
    conn = update_connection(admin, None, conn, name="shop2", sqlite_path="other.db")
    updated = events.one("connection.updated")
    assert updated.details == {"changed": ["name", "sqlite_path"], "password_changed": False}
    assert updated.before["name"] == "shop" and updated.after["name"] == "shop2"

    conn = set_enabled(admin, None, conn, False)
    events.one("connection.disabled")
    with pytest.raises(ConnectionDisabled):
        get_engine(conn)
    conn = set_enabled(admin, None, conn, True)
    events.one("connection.enabled")
    with get_engine(conn).connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM t")).scalar_one() == 0

    with pytest.raises(ValidationError) as refused:
        delete_connection(admin, None, conn, confirmation="shop")
    assert "confirmation" in refused.value.message_dict
    assert events.new() == []
    delete_connection(admin, None, conn, confirmation="shop2")
    assert events.one("connection.deleted").before["name"] == "shop2"
    assert not Connection.objects.exists()


def test_postgresql_register_test_edit_delete(admin, root, events):
    need("postgresql")
    conn = create_connection(admin, None, name="pg", password="Pg-password-123", **PG)
    events.one("connection.created")
    assert decrypt_secret(conn.password_encrypted) == "Pg-password-123"
    result = test_connection(conn)
    assert result.ok, result.message
    assert result.server_version.startswith("PostgreSQL ")

    token = conn.password_encrypted
    conn = update_connection(admin, None, conn, database="no_such_database", password="")
    assert conn.password_encrypted == token  # empty password: unchanged
    assert events.one("connection.updated").details == {"changed": ["database"], "password_changed": False}
    result = test_connection(conn)
    assert not result.ok and result.message.endswith('database "no_such_database" does not exist')

    conn = update_connection(admin, None, conn, database="test")
    events.one("connection.updated")
    assert test_connection(conn).ok
    delete_connection(admin, None, conn, confirmation="pg")
    events.one("connection.deleted")


def test_mariadb_register_test_edit_delete_with_a_real_password(admin, root, events, mariadb_user):
    user, password = mariadb_user
    conn = create_connection(admin, None, name="maria", username=user, password=password, **MY)
    events.one("connection.created")
    result = test_connection(conn)
    assert result.ok, result.message
    assert result.server_version.startswith("MariaDB 10.") or result.server_version.startswith("MariaDB ")

    conn = update_connection(admin, None, conn, password="Wrong-password-1")
    assert events.one("connection.updated").details == {"changed": [], "password_changed": True}
    result = test_connection(conn)
    assert not result.ok and "Access denied" in result.message
    assert "Wrong-password-1" not in result.message

    conn = update_connection(admin, None, conn, password=password)
    events.one("connection.updated")
    assert test_connection(conn).ok
    with get_engine(conn).connect() as db:
        assert db.execute(text("SELECT CURRENT_USER()")).scalar_one().startswith(user + "@")

    conn = update_connection(admin, None, conn, clear_password=True)
    assert events.one("connection.updated").after["has_password"] is False
    assert conn.password_encrypted == ""
    assert not test_connection(conn).ok
    delete_connection(admin, None, conn, confirmation="maria")
    events.one("connection.deleted")


def test_a_draft_can_be_tested_before_it_is_saved(root, mariadb_user):
    user, password = mariadb_user
    draft = Connection(name="draft", username=user, **MY)
    assert test_connection(draft, password=password).ok
    assert not test_connection(draft, password="nope").ok
    assert not Connection.objects.exists()


# --- T29: TLS required, server without TLS ------------------------------------------------------
def test_T29_tls_required_postgresql_fails_cleanly_when_the_server_lacks_tls(admin, root):
    need("postgresql")
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", sslmode="disable") as probe:
        if probe.execute("SHOW ssl").fetchone()[0] == "on":
            pytest.skip("this PostgreSQL server accepts TLS")
    conn = create_connection(admin, None, name="pg-tls", password="Pg-password-123", **{**PG, "tls_mode": "require"})
    result = test_connection(conn)
    assert (result.ok, result.message, result.server_version) == (False, TLS_REFUSED, "")


def test_T29_tls_required_mariadb_fails_cleanly_when_the_server_lacks_tls(admin, root, mariadb_user):
    user, password = mariadb_user
    with pymysql.connect(host="127.0.0.1", user="root", password="", ssl_disabled=True) as probe, \
            probe.cursor() as cursor:
        cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
        if cursor.fetchone()[1] == "YES":
            pytest.skip("this MariaDB server accepts TLS")
    conn = create_connection(admin, None, name="my-tls", username=user, password=password,
                             **{**MY, "tls_mode": "require"})
    assert test_connection(conn).message == TLS_REFUSED


# --- T30: the password never leaves its token ---------------------------------------------------
def test_T30_upstream_error_text_is_one_short_line_without_the_password(root):
    need("postgresql")
    secret = f"Pw-{uuid.uuid4().hex}"
    # The server echoes the database name in its error: here that name is the password.
    draft = Connection(name="leaky", **{**PG, "database": secret})
    result = test_connection(draft, password=secret)
    assert not result.ok
    assert secret not in result.message
    assert 'database "********" does not exist' in result.message
    assert "\n" not in result.message and len(result.message) <= 300
    assert "Traceback" not in result.message and "sqlalche.me" not in result.message


def test_T30_no_password_in_audit_events_logs_or_a_dump_of_the_metadata_database(admin, root, events, json_lines):
    need("postgresql")
    first, second = f"First-{uuid.uuid4().hex}", f"Second-{uuid.uuid4().hex}"
    conn = create_connection(admin, None, name="pg", password=first, **PG)
    conn = update_connection(admin, None, conn, password=second, database="no_such_database")
    assert not test_connection(conn).ok
    conn = update_connection(admin, None, conn, database="test")
    assert test_connection(conn).ok
    set_enabled(admin, None, conn, False)

    written = events.new()
    assert [e.action for e in written] == ["connection.created", "connection.updated", "connection.updated",
                                           "connection.disabled"]
    for event in written:
        blob = json.dumps([event.target, event.details, event.before, event.after])
        assert first not in blob and second not in blob and "password_encrypted" not in blob
    assert "connection.test_failed" in "\n".join(json_lines())
    for line in json_lines():
        assert first not in line and second not in line

    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert second not in dump.getvalue() and first not in dump.getvalue()
    with metadata_db.cursor() as cursor:
        for table in metadata_db.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {metadata_db.ops.quote_name(table)}")  # noqa: S608 - introspected names
            for row in cursor.fetchall():
                assert second not in str(row) and first not in str(row), table
    # ...and yet the password is there, encrypted.
    assert decrypt_secret(Connection.objects.get(pk=conn.pk).password_encrypted) == second


# --- validation: field-keyed messages (T22, T23, T29) ------------------------------------------
def errors_of(**fields) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        create_connection(None, None, **{"name": "x", **fields})
    return caught.value.message_dict


def test_T22_a_sqlite_file_outside_the_roots_cannot_be_registered(root, tmp_path, events):
    outside = make_sqlite(tmp_path / "outside.db")
    assert "outside the directories allowed" in errors_of(engine="sqlite", sqlite_path=str(outside))["sqlite_path"][0]
    (root / "link.db").symlink_to(outside)
    assert "outside" in errors_of(engine="sqlite", sqlite_path=str(root / "link.db"))["sqlite_path"][0]
    assert events.new() == [] and not Connection.objects.exists()


@pytest.mark.parametrize("host", ["169.254.169.254", "fd00:ec2::254", "2852039166", "db1,db2", "/var/run/postgresql"])
def test_T23_a_refused_host_cannot_be_registered(root, host):
    assert list(errors_of(**{**PG, "host": host, "password": "x"})) == ["host"]


def test_T23_the_host_allowlist_applies_to_registration(root, settings):
    settings.TARGET_HOSTS_ALLOWED = ["10.0.0.0/8"]
    assert "not in the allowed target hosts" in errors_of(**PG)["host"][0]


def test_server_fields_are_checked_with_messages_per_field(root, tmp_path, admin):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, ["db.example"])
    assert "port" in errors_of(**{**PG, "port": 70000})
    assert "database" in errors_of(**{**PG, "database": ""})
    assert "username" in errors_of(**{**PG, "username": ""})
    assert "tls_ca_file" in errors_of(**{**PG, "tls_mode": "verify-full"})
    assert "tls_ca_file" in errors_of(**{**PG, "tls_mode": "verify-full", "tls_ca_file": str(tmp_path / "none.pem")})
    assert "tls_ca_file" in errors_of(**{**PG, "tls_mode": "verify-full", "tls_ca_file": "relative.pem"})
    assert "tls_client_key_file" in errors_of(**{**PG, "tls_mode": "require", "tls_client_cert_file": str(cert)})
    assert "tls_client_cert_file" in errors_of(**{**PG, "tls_client_cert_file": str(cert),
                                                   "tls_client_key_file": str(key)})  # TLS is off
    assert "engine" in errors_of(engine="oracle")
    ok = create_connection(admin, None, name="mtls", **{**PG, "tls_mode": "verify-full", "tls_ca_file": str(cert),
                                                        "tls_client_cert_file": str(cert),
                                                        "tls_client_key_file": str(key)})
    assert ok.port == 5432 and ok.tls_mode == "verify-full"
    assert "name" in errors_of(**PG, **{"name": "mtls"})


def test_a_sqlite_connection_keeps_no_server_settings(root, admin):
    path = make_sqlite(root / "a.db")
    conn = create_connection(admin, None, name="a", engine="sqlite", sqlite_path=str(path), host="db.example",
                             username="u", password="pw", tls_mode="require")
    assert (conn.host, conn.username, conn.password_encrypted, conn.tls_mode) == ("", "", "", "disable")


def test_an_edit_based_on_a_stale_copy_is_refused(root, admin, events):
    path = make_sqlite(root / "a.db")
    conn = create_connection(admin, None, name="a", engine="sqlite", sqlite_path=str(path))
    stale = Connection.objects.get(pk=conn.pk)
    update_connection(admin, None, conn, name="b")
    events.new()
    with pytest.raises(ValidationError) as caught:
        update_connection(admin, None, stale, name="c")
    assert NON_FIELD_ERRORS in caught.value.message_dict
    assert Connection.objects.get(pk=conn.pk).name == "b" and events.new() == []


def test_a_sqlite_schema_that_needs_trusted_schema_is_reported_clearly(root):
    # SQLite 3.40 does not mark json_valid() innocuous; with trusted_schema off the
    # whole schema is refused, and "Test connection" must say so, not "Connected."
    path = root / "json.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE docs (body TEXT CHECK (json_valid(body)))")
    innocuous = 0x200000  # SQLITE_INNOCUOUS in pragma_function_list.flags
    if sqlite3.connect(":memory:").execute(
            "SELECT 1 FROM pragma_function_list WHERE name = 'json_valid' AND flags & ?", (innocuous,)).fetchone():
        pytest.skip("this SQLite marks json_valid() innocuous")
    result = test_connection(Connection(name="json", engine="sqlite", sqlite_path=str(path)))
    assert not result.ok
    assert result.message.startswith("The file's schema uses a function or virtual table")
    assert "unsafe use of json_valid()" in result.message


def test_an_fts_trigger_that_needs_trusted_schema_fails_with_a_clear_message(root):
    path = root / "fts.db"
    with sqlite3.connect(path) as raw:  # an application's search index kept in sync by a trigger
        raw.executescript("""
            CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
            CREATE VIRTUAL TABLE notes_fts USING fts5 (body, content = 'notes', content_rowid = 'id');
            CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
                INSERT INTO notes_fts (rowid, body) VALUES (new.id, new.body);
            END;
        """)
    engine = build_engine(Connection(name="fts", engine="sqlite", sqlite_path=str(path)))
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("INSERT INTO notes (body) VALUES ('hello')"))
    engine.dispose()
    message = safe_message(caught.value)
    assert message.startswith("The file's schema uses a function or virtual table") and "unsafe use of" in message


def test_a_refused_host_fails_the_test_without_a_network_attempt(root):
    result = test_connection(Connection(name="m", **{**PG, "host": "169.254.169.254"}), password="x")
    assert not result.ok and "never connects there" in result.message


# --- T30: the stored password goes only to the server it was saved for -------------------------
RETYPE = ("Type the password again: the server settings changed, and the stored password is only ever sent "
          "to the server it was saved for.")


@pytest.fixture
def pki(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, ["db.example"])
    other = tmp_path / "other.pem"
    make_self_signed(other, tmp_path / "other-key.pem", ["db.example"])
    return str(cert), str(key), str(other)


@pytest.mark.parametrize("change", [
    {"host": "localhost"}, {"port": 6543}, {"username": "admin"}, {"engine": "mysql"},
    {"tls_mode": "require"}, {"tls_mode": "verify-full", "tls_ca_file": "CA"},
    {"tls_ca_file": "OTHER"}, {"tls_client_cert_file": "CERT", "tls_client_key_file": "KEY"},
])
def test_T30_a_server_setting_change_without_the_password_is_refused(admin, root, events, pki, change):
    cert, key, other = pki
    files = {"CA": cert, "OTHER": other, "CERT": cert, "KEY": key}
    change = {name: files.get(value, value) for name, value in change.items()}
    start = {**PG, "tls_mode": "verify-full", "tls_ca_file": cert} if "tls_ca_file" in change and \
        "tls_mode" not in change else PG
    conn = create_connection(admin, None, name="pg", password="Stored-pw-1", **start)
    if "tls_client_cert_file" in change:
        change["tls_mode"] = "require"
    events.new()
    with pytest.raises(ValidationError) as caught:
        update_connection(admin, None, conn, **change)
    assert caught.value.message_dict == {"password": [RETYPE]}
    assert events.new() == []
    stored = Connection.objects.get(pk=conn.pk)
    assert (stored.host, stored.port, stored.username, stored.engine) == (
        start["host"], start["port"], start["username"], start["engine"])
    # Typed again, or removed, the change goes through.
    update_connection(admin, None, conn, password="Typed-again-1", **change)
    assert decrypt_secret(Connection.objects.get(pk=conn.pk).password_encrypted) == "Typed-again-1"


def test_T30_the_stored_password_stays_for_the_same_server(admin, root):
    conn = create_connection(admin, None, name="pg", password="Stored-pw-1", **PG)
    token = conn.password_encrypted
    # Name and database do not change where the password goes; a port spelled as text is the same port.
    conn = update_connection(admin, None, conn, name="pg2", database="other", port="5432", host=" 127.0.0.1 ")
    assert conn.password_encrypted == token


def test_T30_removing_the_password_with_a_new_host_is_allowed(admin, root):
    conn = create_connection(admin, None, name="pg", password="Stored-pw-1", **PG)
    conn = update_connection(admin, None, conn, host="localhost", clear_password=True)
    assert (conn.host, conn.password_encrypted) == ("localhost", "")
    # No stored password: nothing to protect, nothing to type again.
    conn = update_connection(admin, None, conn, host="127.0.0.1")
    assert conn.host == "127.0.0.1"
