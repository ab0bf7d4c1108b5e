"""The connection pages: register, test, edit, disable, delete (manage only; T20, T23, T30, T33)."""

from __future__ import annotations

import sqlite3

import pytest

from bastion.audit.models import AuditEvent
from bastion.connections.models import Connection
from tests.conftest import HttpsClient, login
from tests.test_connections_services import MY, PG, need

pytestmark = pytest.mark.django_db
SECRET = "pg-Secret-never-shown-42"


@pytest.fixture
def admin_client(admin) -> HttpsClient:
    client = HttpsClient()
    login(client, admin.username)
    return client


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
        "connection.created", "connection.deleted"]


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
