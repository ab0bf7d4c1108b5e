"""Administering users: create with a one-time password, roles, deactivate, reset (T20, T33)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from bastion.audit.models import AuditEvent
from tests.conftest import HttpsClient, login

pytestmark = pytest.mark.django_db
User = get_user_model()



def issued_password(response) -> str:
    return re.search(r'<p class="secret"><code>([^<]+)</code>', response.content.decode()).group(1)


def test_admin_creates_user_with_one_time_password(admin_client):
    viewer = Group.objects.get(name="Viewer")
    response = admin_client.post("/admin/users/new/", {"username": "erin", "email": "erin@example.com",
                                                       "roles": [viewer.pk]})
    assert response.status_code == 200
    password = issued_password(response)
    erin = User.objects.get(username="erin")
    assert erin.must_change_password and list(erin.groups.all()) == [viewer]
    assert erin.password.startswith("argon2$argon2id$") and password not in erin.password
    newcomer = HttpsClient()
    assert login(newcomer, "erin", password).status_code == 302
    assert newcomer.get("/")["Location"] == "/accounts/password/change/"
    event = AuditEvent.objects.get(action="user.created")
    assert event.after["roles"] == ["Viewer"] and password not in str(event.after)


def test_duplicate_username_refused_with_message(admin_client, user):
    response = admin_client.post("/admin/users/new/", {"username": "ALICE"})
    assert response.status_code == 400 and "already exists" in response.content.decode()


def test_roles_change_is_audited_per_membership(admin_client, user):
    viewer, editor = Group.objects.get(name="Viewer"), Group.objects.get(name="Editor")
    user.groups.add(viewer)
    response = admin_client.post(f"/admin/users/{user.pk}/roles/", {"roles": [editor.pk]})
    assert response.status_code == 302
    assert list(user.groups.all()) == [editor]
    assert {e.action for e in AuditEvent.objects.filter(action__startswith="role.member")} == {
        "role.member_added", "role.member_removed"}


def test_deactivated_user_loses_access_at_once(admin_client, user):
    victim = HttpsClient()
    login(victim, user.username)
    assert victim.get("/").status_code == 200
    assert admin_client.post(f"/admin/users/{user.pk}/active/", {"active": "0"}).status_code == 302
    assert victim.get("/").status_code == 302
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 1


def test_admin_cannot_deactivate_self_or_drop_last_admin(admin_client, admin):
    response = admin_client.post(f"/admin/users/{admin.pk}/active/", {"active": "0"})
    assert response.status_code == 400 and "your own account" in response.content.decode()
    response = admin_client.post(f"/admin/users/{admin.pk}/roles/", {"roles": []})
    assert response.status_code == 400 and "last active administrator" in response.content.decode()
    admin.refresh_from_db()
    assert admin.is_active and admin.groups.filter(name="Admin").exists()


def test_password_reset_by_admin_ends_sessions_and_forces_change(admin_client, user):
    victim = HttpsClient()
    login(victim, user.username)
    response = admin_client.post(f"/admin/users/{user.pk}/password/")
    password = issued_password(response)
    assert victim.get("/").status_code == 302
    fresh = HttpsClient()
    login(fresh, user.username, password)
    assert fresh.get("/")["Location"] == "/accounts/password/change/"


def test_T20_non_admin_cannot_manage_users(client, user, make_user):
    login(client, user.username)
    other = make_user("frank")
    assert client.get("/admin/users/").status_code == 403
    assert client.post("/admin/users/new/", {"username": "mallory"}).status_code == 403
    assert client.post(f"/admin/users/{other.pk}/active/", {"active": "0"}).status_code == 403
    assert not User.objects.filter(username="mallory").exists()
    other.refresh_from_db()
    assert other.is_active


def test_T03_user_pages_escape_hostile_names(admin_client, make_user):
    make_user("x<script>alert(1)</script>", email="")
    body = admin_client.get("/admin/users/").content.decode()
    assert "<script>alert(1)" not in body
