"""The role pages: roles, members and grants through the browser forms (T20, T33, T03, T06, T31)."""

from __future__ import annotations

import sqlite3

import pytest
from django.contrib.auth.models import Group

from bastion.access.models import Grant, RoleOptions
from bastion.access.roles import add_grant, create_role, grant_template
from bastion.audit.models import AuditEvent
from bastion.connections.services import create_connection
from tests.conftest import HttpsClient, login

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'



@pytest.fixture
def shop(admin, tmp_path, settings):
    root = tmp_path / "databases"
    root.mkdir()
    settings.SQLITE_ROOTS = [root]
    db = sqlite3.connect(root / "shop.db")
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, card TEXT)")
    db.commit()
    db.close()
    return create_connection(admin, None, name="shop", engine="sqlite", sqlite_path=str(root / "shop.db"))


@pytest.fixture
def role(admin):
    return create_role(admin, None, "Support", "Answers customers")


def last_seq() -> int:
    latest = AuditEvent.objects.order_by("-seq").first()
    return latest.seq if latest else 0


class Audited:
    """The audit events written inside the block."""

    def __enter__(self):
        self.start = last_seq()
        return self

    def __exit__(self, *exc):
        self.events = list(AuditEvent.objects.filter(seq__gt=self.start).order_by("seq"))

    @property
    def actions(self) -> list[str]:
        return [e.action for e in self.events]


def state() -> tuple:
    """Everything these pages may change."""
    return (sorted(Group.objects.values_list("pk", "name")),
            sorted(RoleOptions.objects.values_list("role_id", "description")),
            sorted(Grant.objects.values_list("pk", "role_id", "action", "connection_id", "schema", "table",
                                             "column", "column_mode", "mask_rule")),
            sorted(Group.user_set.through.objects.values_list("user_id", "group_id")))


def text(response) -> str:
    return response.content.decode()


# --- the whole round: every change writes exactly one audit event ---------------


def test_create_role_then_open_it(admin_client):
    assert admin_client.get("/admin/roles/new/").status_code == 200
    with Audited() as audit:
        response = admin_client.post("/admin/roles/new/", {"name": "Support", "description": "Answers customers"})
    new = Group.objects.get(name="Support")
    assert response.status_code == 302 and response["Location"] == f"/admin/roles/{new.pk}/"
    assert audit.actions == ["role.created"] and new.options.description == "Answers customers"
    page = admin_client.get(response["Location"])
    assert page.status_code == 200 and "Role Support created" in text(page) and "Answers customers" in text(page)
    listing = text(admin_client.get("/admin/roles/"))
    assert f'href="/admin/roles/{new.pk}/"' in listing and "Built-in" in listing


def test_rename_and_describe_a_role(admin_client, role):
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/edit/", {"name": "Helpdesk", "description": "Tier 1"})
    assert response.status_code == 302 and audit.actions == ["role.updated"]
    role.refresh_from_db()
    assert role.name == "Helpdesk" and role.options.description == "Tier 1"


def test_add_and_remove_a_member(admin_client, role, make_user):
    bob = make_user("bob")
    page = text(admin_client.get(f"/admin/roles/{role.pk}/"))
    assert '<option value="bob">bob</option>' in page
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/members/add/", {"user": "bob"})
    assert response.status_code == 302 and response["Location"].endswith("#members")
    assert audit.actions == ["role.member_added"] and bob.groups.filter(pk=role.pk).exists()
    page = text(admin_client.get(f"/admin/roles/{role.pk}/"))
    assert '<option value="bob">' not in page and f"/admin/roles/{role.pk}/members/{bob.pk}/remove/" in page
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/members/{bob.pk}/remove/")
    assert response.status_code == 302 and audit.actions == ["role.member_removed"]
    assert not bob.groups.filter(pk=role.pk).exists()


def test_add_a_table_grant_and_a_masked_column_grant_then_remove_one(admin_client, role, shop):
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/grants/add/",
                                     {"action": "view", "connection": shop.pk, "table": "customers"})
    assert response.status_code == 302 and response["Location"].endswith("#grants")
    assert audit.actions == ["grant.added"]
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/grants/add/",
                                     {"action": "view", "connection": shop.pk, "table": "customers",
                                      "column": "card", "column_mode": "masked", "mask_rule": "last4"})
    assert response.status_code == 302 and audit.actions == ["grant.added"]
    masked = Grant.objects.get(role=role, column="card")
    assert (masked.column_mode, masked.mask_rule) == ("masked", "last4")
    page = text(admin_client.get(f"/admin/roles/{role.pk}/"))
    assert "Masked: Last four characters (****1234)" in page and "<code>customers</code>" in page
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/grants/{masked.pk}/remove/")
    assert response.status_code == 302 and audit.actions == ["grant.removed"]
    assert list(Grant.objects.filter(role=role).values_list("table", "column")) == [("customers", "")]


def test_apply_a_template(admin_client, role, shop):
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/template/",
                                     {"template": "Viewer", "connection": shop.pk})
    assert response.status_code == 302 and audit.actions == ["grant.template_applied"]
    assert set(Grant.objects.filter(role=role, connection=shop).values_list("action", flat=True)) == {
        "view", "query", "export"}
    page = text(admin_client.get(response["Location"]))
    assert "Viewer template applied to Support on shop: 3 grants added." in page


def test_delete_a_role_needs_its_name_typed(admin_client, role, shop, make_user):
    make_user("bob").groups.add(role)
    admin_client.post(f"/admin/roles/{role.pk}/template/", {"template": "Editor", "connection": shop.pk})
    before = state()
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/delete/", {"confirmation": "support"})
    assert response.status_code == 400 and "Type the role&#x27;s name, Support, exactly" in text(response)
    assert 'value="support"' in text(response)  # the form stays filled
    assert audit.actions == [] and state() == before
    with Audited() as audit:
        response = admin_client.post(f"/admin/roles/{role.pk}/delete/", {"confirmation": "Support"})
    assert response.status_code == 302 and response["Location"] == "/admin/roles/"
    assert audit.actions == ["role.deleted"] and not Group.objects.filter(pk=role.pk).exists()
    assert not Grant.objects.filter(role_id=role.pk).exists()
    assert "Role Support deleted." in text(admin_client.get("/admin/roles/"))


# --- validation: a clear message, status 400, nothing changed -------------------


def refused(client, path: str, data: dict, message: str) -> str:
    before, start = state(), last_seq()
    response = client.post(path, data)
    body = text(response)
    assert response.status_code == 400, (path, response.status_code)
    assert message in body, (message, body[body.find("<main"):][:3000])
    assert state() == before and last_seq() == start
    return body


def test_validation_errors_are_clear_and_change_nothing(admin_client, role, shop, admin):
    viewer = Group.objects.get(name="Viewer")
    refused(admin_client, "/admin/roles/new/", {"name": "viewer"}, "A role with this name already exists.")
    refused(admin_client, "/admin/roles/new/", {"name": "  "}, "This field is required.")
    refused(admin_client, "/admin/roles/new/", {}, "This field is required.")
    refused(admin_client, f"/admin/roles/{role.pk}/edit/", {"name": "Admin"}, "A role with this name already exists.")
    refused(admin_client, f"/admin/roles/{viewer.pk}/edit/", {"name": "Watcher"},
            "The built-in role Viewer cannot be renamed.")
    body = refused(admin_client, f"/admin/roles/{role.pk}/grants/add/",
                   {"action": "view", "connection": shop.pk, "table": "customers", "column": "card",
                    "column_mode": "masked"}, "Choose a masking rule for a masked column.")
    assert 'value="card"' in body and 'value="customers"' in body  # the form stays filled
    refused(admin_client, f"/admin/roles/{role.pk}/grants/add/", {"action": "view"},
            "Choose a connection: only the Admin role holds data grants on every connection.")
    refused(admin_client, f"/admin/roles/{role.pk}/grants/add/", {"action": "manage", "connection": shop.pk},
            "This action is global")
    refused(admin_client, f"/admin/roles/{role.pk}/grants/add/", {"action": "fly"}, "Select a valid choice.")
    admin_client.post(f"/admin/roles/{role.pk}/grants/add/", {"action": "view", "connection": shop.pk})
    refused(admin_client, f"/admin/roles/{role.pk}/grants/add/", {"action": "view", "connection": shop.pk},
            "already exists")
    refused(admin_client, f"/admin/roles/{role.pk}/template/", {"template": "Admin", "connection": shop.pk},
            "Choose a template and a connection.")
    refused(admin_client, f"/admin/roles/{role.pk}/members/add/", {"user": "nobody"},
            "Choose an active user from the list.")
    admin_client.post(f"/admin/roles/{role.pk}/members/add/", {"user": admin.username})
    refused(admin_client, f"/admin/roles/{role.pk}/members/add/", {"user": admin.username},
            "root-admin is already a member of Support.")
    refused(admin_client, f"/admin/roles/{viewer.pk}/members/{admin.pk}/remove/", {},
            "root-admin is not a member of Viewer.")
    refused(admin_client, f"/admin/roles/{viewer.pk}/delete/", {"confirmation": "Viewer"},
            "The built-in role Viewer cannot be deleted.")


def test_fixed_roles_show_their_grants_read_only_and_refuse_changes(admin_client, admin, shop):
    admin_role = Group.objects.get(name="Admin")
    page = text(admin_client.get(f"/admin/roles/{admin_role.pk}/"))
    assert "are fixed" in page and "every connection" in page
    assert "/grants/add/" not in page and "/remove/" in page  # members can be removed, grants cannot
    assert f"/admin/roles/{admin_role.pk}/grants/" not in page.replace("/grants/add/", "")
    assert "/delete/" not in page and "/edit/" not in page
    grant = admin_role.grants.first()
    refused(admin_client, f"/admin/roles/{admin_role.pk}/grants/{grant.pk}/remove/", {},
            "The grants of the built-in role Admin are fixed.")
    refused(admin_client, f"/admin/roles/{admin_role.pk}/grants/add/", {"action": "view", "connection": shop.pk},
            "The grants of the built-in role Admin are fixed.")
    refused(admin_client, f"/admin/roles/{admin_role.pk}/template/", {"template": "Viewer", "connection": shop.pk},
            "The grants of the built-in role Admin are fixed.")
    refused(admin_client, f"/admin/roles/{admin_role.pk}/members/{admin.pk}/remove/", {},
            "last active administrator")


def test_a_grant_is_removed_only_through_its_own_role(admin_client, role, admin):
    other = create_role(admin, None, "Other")
    admin_grant = Group.objects.get(name="Admin").grants.first()
    before = state()
    assert admin_client.post(f"/admin/roles/{role.pk}/grants/{admin_grant.pk}/remove/").status_code == 404
    assert admin_client.post(f"/admin/roles/{other.pk + 1000}/delete/", {"confirmation": "x"}).status_code == 404
    assert state() == before


def test_the_role_in_the_address_wins_over_one_in_the_form(admin_client, role, admin, shop):
    other = create_role(admin, None, "Other")
    response = admin_client.post(f"/admin/roles/{role.pk}/grants/add/",
                                 {"role": other.pk, "action": "view", "connection": shop.pk})
    assert response.status_code == 302
    assert Grant.objects.filter(role=role).count() == 1 and not Grant.objects.filter(role=other).exists()


# --- T20: only manage may use these pages ---------------------------------------


def role_urls(role, shop, member, grant) -> list[tuple[str, str, dict]]:
    base = f"/admin/roles/{role.pk}"
    return [
        ("get", "/admin/roles/", {}),
        ("get", "/admin/roles/new/", {}),
        ("post", "/admin/roles/new/", {"name": "Intruders"}),
        ("get", f"{base}/", {}),
        ("post", f"{base}/edit/", {"name": "Owned"}),
        ("post", f"{base}/delete/", {"confirmation": role.name}),
        ("post", f"{base}/members/add/", {"user": "mallory"}),
        ("post", f"{base}/members/{member.pk}/remove/", {}),
        ("post", f"{base}/grants/add/", {"action": "view", "connection": shop.pk}),
        ("post", f"{base}/grants/{grant.pk}/remove/", {}),
        ("post", f"{base}/template/", {"template": "Editor", "connection": shop.pk}),
    ]


@pytest.mark.parametrize("persona", ["no_grants", "viewer", "editor", "auditor"])
def test_T20_only_managers_get_in_and_nothing_changes(persona, role, shop, admin, make_user):
    mallory = make_user("mallory")
    role_name = {"viewer": "Viewer", "editor": "Editor", "auditor": "Auditor"}.get(persona)
    if role_name:
        mallory.groups.add(Group.objects.get(name=role_name))
    if persona in ("viewer", "editor"):
        grant_template(admin, None, Group.objects.get(name=role_name), shop)
    member = make_user("bob")
    member.groups.add(role)
    grant = add_grant(admin, None, role, "view", connection=shop)
    client = HttpsClient()
    assert login(client, "mallory").status_code == 302
    for method, path, data in role_urls(role, shop, member, grant):
        before, start = state(), last_seq()
        response = getattr(client, method)(path, data)
        assert response.status_code == 403, (persona, method, path, response.status_code)
        assert state() == before, (method, path)
        assert [e.outcome for e in AuditEvent.objects.filter(seq__gt=start)] == ["denied"], (method, path)


def test_T20_anonymous_is_sent_to_sign_in(client, role):
    for path in ("/admin/roles/", f"/admin/roles/{role.pk}/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    before = state()
    response = client.post(f"/admin/roles/{role.pk}/edit/", {"name": "Owned"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert state() == before


# --- T06: GET never changes anything; POST needs the CSRF token -----------------


def test_T06_get_on_every_mutating_url_changes_nothing(admin_client, role, shop, admin, make_user):
    member = make_user("bob")
    member.groups.add(role)
    grant = add_grant(admin, None, role, "view", connection=shop)
    for method, path, data in role_urls(role, shop, member, grant):
        if method != "post" or path.endswith("/new/"):
            continue
        before, start = state(), last_seq()
        response = admin_client.get(path, data)
        assert response.status_code == 405, (path, response.status_code)
        assert state() == before and not AuditEvent.objects.filter(seq__gt=start, outcome="success").exists()


def test_T06_post_without_csrf_token_is_refused(admin, role):
    client = HttpsClient(enforce_csrf_checks=True)
    client.force_login(admin)
    before = state()
    response = client.post(f"/admin/roles/{role.pk}/delete/", {"confirmation": role.name})
    assert response.status_code == 403 and state() == before


def test_every_form_on_the_page_posts_with_a_csrf_token(admin_client, role, shop, make_user):
    make_user("bob").groups.add(role)
    page = text(admin_client.get(f"/admin/roles/{role.pk}/"))
    assert page.count('<form method="post"') == page.count('name="csrfmiddlewaretoken"') >= 5
    assert '<form method="get"' not in page


# --- T03: hostile names are escaped ----------------------------------------------


def test_T03_hostile_names_are_escaped(admin_client, admin, shop, make_user):
    hostile = create_role(admin, None, XSS, XSS)
    make_user("eve").groups.add(hostile)
    response = admin_client.post(f"/admin/roles/{hostile.pk}/grants/add/",
                                 {"action": "view", "connection": shop.pk, "schema": XSS, "table": XSS,
                                  "column": XSS, "column_mode": "visible"})
    assert response.status_code == 302
    pages = [admin_client.get("/admin/roles/"), admin_client.get(f"/admin/roles/{hostile.pk}/"),
             admin_client.get(response["Location"])]
    refusal = admin_client.post(f"/admin/roles/{hostile.pk}/delete/", {"confirmation": "no"})
    for response in [*pages, refusal]:
        body = text(response)
        assert "<script>alert" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_pages_have_no_inline_script_or_style(admin_client, role):
    for path in ("/admin/roles/", "/admin/roles/new/", f"/admin/roles/{role.pk}/"):
        body = text(admin_client.get(path))
        assert "<script>" not in body and " style=" not in body
