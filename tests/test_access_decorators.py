"""View declarations enforce the policy server-side (T20): login redirect, 403, immediate revocation.

This module is also the URLconf of its tests: a few declared views in front of
Bastion's own patterns.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import path, resolve
from django.views import View
from django.views.decorators.http import require_POST, require_safe

from bastion import urls as bastion_urls
from bastion.access.declarations import THIRD_PARTY, declaration_for
from bastion.access.decorators import (
    PUBLIC,
    SIGNED_IN,
    DeclaredPermissionMixin,
    Kind,
    Requires,
    declared_permission,
    public,
    requires,
    signed_in,
)
from bastion.access.models import Action
from bastion.access.policy import Resource
from bastion.access.roles import ADMIN, VIEWER, add_grant, grant_template, remove_grant, remove_member
from bastion.audit.models import AuditEvent
from bastion.connections.models import Connection
from tests.conftest import enrol_mfa

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

User = get_user_model()
CALLS: list[str] = []  # which view bodies ran


def table_of(request: HttpRequest, connection_id: int, table: str) -> Resource:
    return Resource(connection_id, None, table)


@require_safe
@requires(Action.VIEW, resource=table_of)
def rows(request: HttpRequest, connection_id: int, table: str) -> HttpResponse:
    CALLS.append("rows")
    return HttpResponse(f"rows of {table}")


@require_POST
@requires(Action.DELETE, resource=table_of)
def delete_rows(request: HttpRequest, connection_id: int, table: str) -> HttpResponse:
    CALLS.append("delete_rows")
    return HttpResponse("deleted")


@requires(Action.VIEW, resource=lambda request, **kwargs: None)
def nothing_found(request: HttpRequest) -> HttpResponse:
    CALLS.append("nothing_found")
    return HttpResponse("global")


@requires(Action.MANAGE)
def manage(request: HttpRequest) -> HttpResponse:
    CALLS.append("manage")
    return HttpResponse("manage")


@signed_in
def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("home")


@public
def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


class AuditPage(DeclaredPermissionMixin, View):
    permission = Requires(Action.AUDIT_VIEW)

    def get(self, request: HttpRequest) -> HttpResponse:
        CALLS.append("audit")
        return HttpResponse("audit")


class UndeclaredPage(DeclaredPermissionMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        CALLS.append("undeclared_page")
        return HttpResponse("ran")


def undeclared(request: HttpRequest) -> HttpResponse:
    CALLS.append("undeclared")
    return HttpResponse("ran")


urlpatterns = [
    path("t/<int:connection_id>/<str:table>/", rows, name="t_rows"),
    path("t/<int:connection_id>/<str:table>/delete/", delete_rows, name="t_delete"),
    path("t/nothing/", nothing_found, name="t_nothing"),
    path("t/manage/", manage, name="t_manage"),
    path("t/home/", home, name="t_home"),
    path("t/hello/", hello, name="t_hello"),
    path("t/audit/", AuditPage.as_view(), name="t_audit"),
    path("t/undeclared/", undeclared, name="account_email"),  # must not borrow allauth's entry
    *bastion_urls.urlpatterns,
]
handler403 = bastion_urls.handler403


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


@pytest.fixture
def shop():
    return Connection.objects.create(name="shop", engine="sqlite", sqlite_path="/srv/shop.db")


@pytest.fixture
def other():
    return Connection.objects.create(name="other", engine="sqlite", sqlite_path="/srv/other.db")


@pytest.fixture
def viewer(shop):
    """A Viewer on shop only."""
    grant_template(None, None, Group.objects.get(name=VIEWER), shop)
    user = User.objects.create_user("vera", password=None)
    user.groups.add(Group.objects.get(name=VIEWER))
    return user


@pytest.fixture
def nobody():
    return User.objects.create_user("nobody", password=None)


def as_user(client, user):
    client.force_login(user)
    return client


def is_login_redirect(response, path: str) -> bool:
    return response.status_code == 302 and response["Location"] == f"/accounts/login/?next={path}"


# --- enforcement ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/t/1/orders/", "/t/manage/", "/t/home/", "/t/audit/", "/t/nothing/"])
def test_T20_anonymous_goes_to_the_login_page(client, path):
    response = client.get(path)
    assert is_login_redirect(response, path), (response.status_code, response.get("Location"))
    assert CALLS == []


def test_T20_public_view_needs_nobody(client):
    assert client.get("/t/hello/").content == b"hello"


def test_T20_signed_in_without_grants_gets_403_and_the_view_never_runs(client, nobody, shop):
    as_user(client, nobody)
    assert client.get("/t/home/").status_code == 200
    for url in (f"/t/{shop.pk}/orders/", "/t/manage/", "/t/audit/", "/t/nothing/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"You do not have permission" in response.content
    assert client.post(f"/t/{shop.pk}/orders/delete/").status_code == 403
    assert CALLS == []
    denied = AuditEvent.objects.filter(action="request.denied", actor="nobody")
    assert denied.count() == 5, "every refusal is audited by the existing middleware"


def test_T20_grant_opens_exactly_its_scope(client, viewer, shop, other):
    as_user(client, viewer)
    assert client.get(f"/t/{shop.pk}/orders/").content == b"rows of orders"
    assert client.get(f"/t/{other.pk}/orders/").status_code == 403, "another connection"
    assert client.post(f"/t/{shop.pk}/orders/delete/").status_code == 403, "viewers do not delete"
    assert client.get("/t/manage/").status_code == 403
    assert client.get("/t/nothing/").status_code == 403, "no resource: only global grants pass"
    assert CALLS == ["rows"]


def test_T20_admin_role_passes_every_declaration(client, shop):
    admin = User.objects.create_user("boss", password=None)
    admin.groups.add(Group.objects.get(name=ADMIN))
    enrol_mfa(admin)  # the Admin role requires a second factor (T16)
    as_user(client, admin)
    for url in (f"/t/{shop.pk}/orders/", "/t/manage/", "/t/audit/", "/t/nothing/", "/t/home/"):
        assert client.get(url).status_code == 200, url
    assert client.post(f"/t/{shop.pk}/orders/delete/").status_code == 200


def test_T20_revoking_a_grant_takes_effect_at_the_next_request(client, viewer, shop):
    as_user(client, viewer)
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 200
    remove_grant(None, None, Group.objects.get(name=VIEWER).grants.get(action=Action.VIEW))
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 403


def test_T20_leaving_a_role_takes_effect_at_the_next_request(client, viewer, shop):
    as_user(client, viewer)
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 200
    remove_member(None, None, Group.objects.get(name=VIEWER), viewer)
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 403


def test_T20_a_new_grant_takes_effect_at_the_next_request(client, nobody, shop):
    support = Group.objects.create(name="Support")
    nobody.groups.add(support)
    as_user(client, nobody)
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 403
    add_grant(None, None, support, Action.VIEW, shop, table="orders")
    assert client.get(f"/t/{shop.pk}/orders/").status_code == 200
    assert client.get(f"/t/{shop.pk}/customers/").status_code == 403


def test_T20_mixin_without_declaration_fails_closed(nobody):
    request = RequestFactory().get("/t/x/")
    request.user = nobody
    with pytest.raises(ImproperlyConfigured, match="does not declare"):
        UndeclaredPage.as_view()(request)
    assert CALLS == []


# --- declarations are readable -----------------------------------------------------------------


def test_T20_declarations_are_readable_from_the_resolved_view():
    assert declared_permission(rows) == Requires(Action.VIEW, table_of), "survives require_safe on top"
    assert declared_permission(manage).action == Action.MANAGE
    assert declared_permission(home) is SIGNED_IN
    assert declared_permission(hello) is PUBLIC
    assert declared_permission(resolve("/t/audit/").func) == Requires(Action.AUDIT_VIEW)
    assert declared_permission(undeclared) is None
    assert declared_permission(UndeclaredPage.as_view()) is None


def test_T20_a_view_declares_once():
    with pytest.raises(ImproperlyConfigured, match="already declares"):
        public(home)
    with pytest.raises(ImproperlyConfigured, match="already declares"):
        requires(Action.MANAGE)(require_safe(hello))


def test_T20_third_party_entries_apply_only_to_third_party_views():
    assert declaration_for(resolve("/t/undeclared/")) is None, "a Bastion view cannot borrow 'account_email'"
    assert declaration_for(resolve("/accounts/password/change/")) is SIGNED_IN
    assert declaration_for(resolve("/accounts/login/")) is PUBLIC, "our subclass of allauth's LoginView"
    assert all(d.kind in (Kind.PUBLIC, Kind.SIGNED_IN) for d in THIRD_PARTY.values())


# --- the run-time guard ---------------------------------------------------------------------------


@pytest.fixture
def guarded(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "bastion.access.middleware.DeclaredPermissionMiddleware"]


def test_T20_middleware_refuses_a_view_without_declaration(guarded, client, nobody, caplog):
    as_user(client, nobody)
    assert client.get("/t/undeclared/").status_code == 403
    assert CALLS == []
    assert any("view_without_permission" in str(record.msg) for record in caplog.records)
    assert client.get("/t/home/").status_code == 200, "declared views are untouched"


def test_T20_middleware_keeps_third_party_views_working(guarded, client, nobody):
    response = client.get("/accounts/email/")
    assert is_login_redirect(response, "/accounts/email/")
    assert client.get("/accounts/login/").status_code == 200
    as_user(client, nobody)
    assert client.get("/accounts/email/").status_code == 200
