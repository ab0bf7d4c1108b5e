"""The connection pages: register, test, edit, disable, delete (manage only; T20, T23, T30, T33)."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import struct
import threading

import pytest

from bastion.audit.models import AuditEvent
from bastion.connections.crypto import encrypt_secret
from bastion.connections.models import Connection
from tests.conftest import login
from tests.test_connections_services import MY, PG, need

pytestmark = pytest.mark.django_db
SECRET = "pg-Secret-never-shown-42"



@pytest.fixture
def sqlite_file(tmp_path, settings):
    root = tmp_path / "databases"
    root.mkdir()
    settings.SQLITE_ROOTS = [root]
    path = root / "shop.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    return path


def form(**fields) -> dict:
    return {"name": "Shop", "engine": "sqlite", "tls_mode": "disable", "action": "save", **fields}


def test_register_test_and_delete_sqlite_connection(admin_client, sqlite_file):
    tested = admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file), action="test"))
    assert tested.status_code == 200 and not Connection.objects.exists()
    assert "Connected: SQLite" in tested.content.decode()
    saved = admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file)))
    assert saved.status_code == 302
    shop = Connection.objects.get(name="Shop")
    listing = admin_client.get("/admin/connections/").content.decode()
    assert "Shop" in listing and str(sqlite_file) in listing
    admin_client.post(f"/admin/connections/{shop.pk}/test/")
    wrong = admin_client.post(f"/admin/connections/{shop.pk}/delete/", {"confirmation": "shop"})
    assert wrong.status_code == 400 and Connection.objects.filter(pk=shop.pk).exists()
    assert admin_client.post(f"/admin/connections/{shop.pk}/delete/", {"confirmation": "Shop"}).status_code == 302
    assert not Connection.objects.exists()
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="connection.").order_by("seq")] == [
        "connection.tested", "connection.created", "connection.tested", "connection.deleted"]


def test_T22_sqlite_file_outside_roots_refused_next_to_the_field(admin_client, sqlite_file):
    response = admin_client.post("/admin/connections/new/", form(sqlite_path="/etc/passwd"))
    assert response.status_code == 400 and not Connection.objects.exists()
    assert response.context["form"].errors["sqlite_path"]


def test_T23_metadata_address_refused(admin_client):
    response = admin_client.post("/admin/connections/new/", form(
        engine="postgresql", host="169.254.169.254", port=5432, database="x", username="u"))
    assert response.status_code == 400 and not Connection.objects.exists()
    assert response.context["form"].errors["host"]


def test_T30_password_never_rendered_back_and_kept_when_left_empty(admin_client):
    need("postgresql")
    admin_client.post("/admin/connections/new/", form(**{**PG, "name": "PG"}, password=SECRET))
    pg = Connection.objects.get(name="PG")
    page = admin_client.get(f"/admin/connections/{pg.pk}/edit/").content.decode()
    assert SECRET not in page and pg.password_encrypted not in page and 'placeholder="unchanged"' in page
    edit = admin_client.post(f"/admin/connections/{pg.pk}/edit/", form(
        **{**PG, "name": "PG renamed"}, updated_at=pg.updated_at.isoformat()))
    assert edit.status_code == 302
    pg.refresh_from_db()
    assert pg.name == "PG renamed" and pg.password_encrypted
    assert SECRET not in str(list(AuditEvent.objects.values()))


def test_T38_stale_edit_refused(admin_client, sqlite_file):
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file)))
    shop = Connection.objects.get()
    loaded = shop.updated_at.isoformat()
    admin_client.post(f"/admin/connections/{shop.pk}/edit/", form(sqlite_path=str(sqlite_file), name="First",
                                                                   updated_at=loaded))
    second = admin_client.post(f"/admin/connections/{shop.pk}/edit/", form(sqlite_path=str(sqlite_file),
                                                                           name="Second", updated_at=loaded))
    assert second.status_code == 400 and "Someone else changed" in second.content.decode()
    assert Connection.objects.get().name == "First"


def test_disable_and_enable(admin_client, sqlite_file):
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file)))
    shop = Connection.objects.get()
    admin_client.post(f"/admin/connections/{shop.pk}/enabled/", {"enabled": "0"})
    assert not Connection.objects.get().enabled
    admin_client.post(f"/admin/connections/{shop.pk}/enabled/", {"enabled": "1"})
    assert Connection.objects.get().enabled


def test_mysql_connection_tested_from_the_form(admin_client):
    need("mariadb")
    response = admin_client.post("/admin/connections/new/", form(**{**MY, "name": "Maria"}, username="root",
                                                                 action="test"))
    assert "Connected: MariaDB" in response.content.decode()


def test_T20_only_admins_manage_connections(client, user, sqlite_file, admin):
    from bastion.connections.services import create_connection

    shop = create_connection(admin, None, name="Shop", engine="sqlite", sqlite_path=str(sqlite_file))
    login(client, user.username)
    for path in ["/admin/connections/", "/admin/connections/new/", f"/admin/connections/{shop.pk}/edit/",
                 f"/admin/connections/{shop.pk}/delete/"]:
        assert client.get(path).status_code == 403, path
    assert client.post(f"/admin/connections/{shop.pk}/delete/", {"confirmation": "Shop"}).status_code == 403
    assert client.post(f"/admin/connections/{shop.pk}/enabled/", {"enabled": "0"}).status_code == 403
    assert Connection.objects.get().enabled


def test_home_lists_only_granted_connections(client, user, sqlite_file, admin):
    from django.contrib.auth.models import Group

    from bastion.access.roles import grant_template
    from bastion.connections.services import create_connection

    shop = create_connection(admin, None, name="Shop", engine="sqlite", sqlite_path=str(sqlite_file))
    create_connection(admin, None, name="Secret", engine="sqlite", sqlite_path=str(sqlite_file))
    login(client, user.username)
    assert "No databases yet" in client.get("/").content.decode()
    viewer = Group.objects.get(name="Viewer")
    grant_template(admin, None, viewer, shop)
    user.groups.add(viewer)
    page = client.get("/").content.decode()
    assert "Shop" in page and "Secret" not in page


def test_T03_connection_names_escaped(admin_client, sqlite_file):
    hostile = "<img src=x onerror=alert(1)>"
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file), name=hostile))
    body = admin_client.get("/admin/connections/").content.decode()
    assert "<img src=x" not in body and "&lt;img src=x" in body


def test_T33_deleting_a_connection_records_the_grants_it_takes_along(admin_client, sqlite_file, admin):
    from django.contrib.auth.models import Group

    from bastion.access.roles import grant_template
    from bastion.connections.services import create_connection

    shop = create_connection(admin, None, name="Shop", engine="sqlite", sqlite_path=str(sqlite_file))
    grant_template(admin, None, Group.objects.get(name="Viewer"), shop)
    admin_client.post(f"/admin/connections/{shop.pk}/delete/", {"confirmation": "Shop"})
    event = AuditEvent.objects.get(action="connection.deleted")
    assert {g["action"] for g in event.before["grants"]} == {"view", "query", "export"}


def test_T30_rotate_keys_reencrypts_and_drops_the_old_key(admin, settings, capsys):
    from bastion.cli import main as bastion_cli
    from bastion.connections.crypto import decrypt_secret
    from bastion.connections.services import create_connection

    need("postgresql")
    pg = create_connection(admin, None, name="PG", password=SECRET, **PG)
    old_keys = list(settings.ENCRYPTION_KEYS)
    assert bastion_cli(["rotate-keys"]) == 0
    pg.refresh_from_db()
    new_keys = settings.DATA.encryption_keys.read_text().strip().split(",")
    assert len(new_keys) == 1 and new_keys[0] not in old_keys
    assert decrypt_secret(pg.password_encrypted) == SECRET
    settings.ENCRYPTION_KEYS = old_keys
    from cryptography.fernet import InvalidToken

    with pytest.raises(InvalidToken):
        decrypt_secret(pg.password_encrypted)
    assert AuditEvent.objects.filter(action="connection.keys_rotated").count() == 1


# --- T30: the stored password goes only to the server it was saved for --------------------------------
RETYPE = ("Type the password again: the server settings changed, and the stored password is only ever sent "
          "to the server it was saved for.")


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class FakePostgres:
    """A "PostgreSQL server" on 127.0.0.1 that asks for a cleartext password and keeps what it gets."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):  # the client gave up: nothing more to record
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        while True:
            length, code = struct.unpack("!II", _exactly(conn, 8))
            _exactly(conn, length - 8)
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: "no"
                conn.sendall(b"N")
                continue
            break  # the StartupMessage
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind = _exactly(conn, 1)
        (length,) = struct.unpack("!I", _exactly(conn, 4))
        self.received.append(kind + _exactly(conn, length - 4))  # 'p' ... password \0

    def got(self, secret: str) -> bool:
        return any(secret.encode() in message for message in self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def fake_pg(settings):
    settings.TARGET_HOSTS_ALLOWED = []  # 127.0.0.1 is then allowed: netguard refuses only fixed ranges
    server = FakePostgres()
    yield server
    server.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def stored_pg(host: str, port: int) -> Connection:
    """A connection registered earlier, with a password the admin never sees again."""
    return Connection.objects.create(name="prod", engine="postgresql", host=host, port=port, database="app",
                                     username="app", tls_mode="disable", password_encrypted=encrypt_secret(SECRET))


def pg_form(connection: Connection, **fields) -> dict:
    return form(**{"name": connection.name, "engine": "postgresql", "host": connection.host, "port": connection.port,
                   "database": connection.database, "username": connection.username, "tls_mode": "disable",
                   "updated_at": connection.updated_at.isoformat(), **fields})


def test_T30_edit_form_test_does_not_send_the_stored_password_to_a_new_host(admin_client, fake_pg):
    prod = stored_pg("10.0.0.5", 5432)
    response = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(
        prod, name="prod (copy)", host="127.0.0.1", port=fake_pg.port, action="test"))
    assert response.status_code == 400
    assert response.context["form"].errors["password"] == [RETYPE]
    assert fake_pg.connections == 0 and not fake_pg.got(SECRET)


@pytest.mark.parametrize("change", [
    {"host": "127.0.0.1"}, {"port": 6543}, {"username": "postgres"}, {"tls_mode": "require"},
    {"engine": "mysql"}])
def test_T30_any_server_setting_change_needs_the_password_again_to_test(admin_client, fake_pg, change):
    prod = stored_pg("localhost", fake_pg.port)
    response = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(prod, action="test", **change))
    assert response.context["form"].errors.get("password") == [RETYPE], response.context["form"].errors
    assert fake_pg.connections == 0


def test_T30_edit_form_test_sends_a_retyped_password_to_the_new_host(admin_client, fake_pg):
    prod = stored_pg("10.0.0.5", 5432)
    response = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(
        prod, host="127.0.0.1", port=fake_pg.port, password="Typed-Again-1", action="test"))
    assert "Could not connect" in response.content.decode()
    assert fake_pg.got("Typed-Again-1") and not fake_pg.got(SECRET)


def test_T30_edit_form_test_with_the_same_server_uses_the_stored_password(admin_client, fake_pg):
    # Name and database are not where the password goes: the stored one is still used.
    prod = stored_pg("127.0.0.1", fake_pg.port)
    response = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(
        prod, name="prod renamed", database="other", action="test"))
    body = response.content.decode()
    assert "Could not connect" in body and "already exists" not in body
    assert fake_pg.got(SECRET)


def test_T30_save_with_a_new_host_then_connect_never_sends_the_stored_password(admin_client, fake_pg):
    prod = stored_pg("localhost", closed_port())
    token = prod.password_encrypted
    saved = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(
        prod, host="127.0.0.1", port=fake_pg.port))
    assert saved.status_code == 400 and saved.context["form"].errors["password"] == [RETYPE]
    prod.refresh_from_db()
    assert (prod.host, prod.password_encrypted) == ("localhost", token)
    admin_client.post(f"/admin/connections/{prod.pk}/test/")
    assert fake_pg.connections == 0

    # With the password typed again the new server gets that one, never the stored one.
    saved = admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(
        prod, host="127.0.0.1", port=fake_pg.port, password="Typed-Again-2"))
    assert saved.status_code == 302
    admin_client.post(f"/admin/connections/{prod.pk}/test/")
    assert fake_pg.got("Typed-Again-2") and not fake_pg.got(SECRET)


def test_edit_form_test_of_an_unchanged_connection_connects(admin_client, sqlite_file):
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file)))
    shop = Connection.objects.get()
    response = admin_client.post(f"/admin/connections/{shop.pk}/edit/", form(
        sqlite_path=str(sqlite_file), updated_at=shop.updated_at.isoformat(), action="test"))
    body = response.content.decode()
    assert response.status_code == 200 and "Connected: SQLite" in body, body
    assert "already exists" not in body


def test_edit_form_test_still_refuses_the_name_of_another_connection(admin_client, sqlite_file):
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file)))
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file), name="Other"))
    other = Connection.objects.get(name="Other")
    response = admin_client.post(f"/admin/connections/{other.pk}/edit/", form(
        sqlite_path=str(sqlite_file), name="Shop", updated_at=other.updated_at.isoformat(), action="test"))
    assert response.status_code == 400 and response.context["form"].errors["name"]


def test_T30_every_test_is_audited_without_the_password(admin_client, fake_pg, sqlite_file):
    admin_client.post("/admin/connections/new/", form(sqlite_path=str(sqlite_file), action="test"))
    prod = stored_pg("127.0.0.1", fake_pg.port)
    admin_client.post(f"/admin/connections/{prod.pk}/edit/", pg_form(prod, action="test"))
    admin_client.post(f"/admin/connections/{prod.pk}/test/")
    tested = list(AuditEvent.objects.filter(action="connection.tested").order_by("seq"))
    assert [(e.target, e.details["ok"], e.outcome) for e in tested] == [
        ("Shop", True, "success"), ("prod", False, "failure"), ("prod", False, "failure")]
    assert tested[0].details["message"] == "Connected."
    assert all(e.details["message"] for e in tested) and fake_pg.got(SECRET)
    assert SECRET not in str(list(AuditEvent.objects.values())) and prod.password_encrypted not in str(
        list(AuditEvent.objects.values()))
