"""Roles and grants change only through audited services (T20, T33 for access changes)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory

from bastion.access.forms import GrantForm, MemberForm, RoleForm
from bastion.access.models import Action, ColumnMode, Grant, GrantWriteRefused, MaskRule, RoleOptions
from bastion.access.policy import Resource, check
from bastion.access.roles import (
    ADMIN,
    AUDITOR,
    BUILTIN_ROLES,
    EDITOR,
    TEMPLATES,
    VIEWER,
    add_grant,
    add_member,
    create_role,
    delete_role,
    ensure_builtin_roles,
    grant_template,
    remove_grant,
    remove_member,
    update_role,
)
from bastion.audit.models import AuditEvent
from bastion.connections.models import Connection

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def shop():
    return Connection.objects.create(name="shop", engine="sqlite", sqlite_path="/srv/shop.db")


@pytest.fixture
def boss():
    """A member of the Admin role (not a superuser), acting through a request."""
    user = User.objects.create_user("boss", password=None)
    user.groups.add(Group.objects.get(name=ADMIN))
    return user


@pytest.fixture
def request_of():
    def make(user):
        request = RequestFactory().post("/admin/access/", REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT="pytest")
        request.user = user
        return request
    return make


class Events:
    """Audit events written since the fixture was created."""

    def __init__(self):
        self.start = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    def new(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(seq__gt=self.start).order_by("seq"))

    def one(self) -> AuditEvent:
        events = self.new()
        assert len(events) == 1, [e.action for e in events]
        return events[0]


@pytest.fixture
def events():
    return Events()


# --- built-in roles ------------------------------------------------------------------


def test_T20_builtin_roles_exist_after_migrate_with_their_fixed_grants():
    assert set(Group.objects.filter(name__in=BUILTIN_ROLES).values_list("name", flat=True)) == set(BUILTIN_ROLES)
    admin_grants = Grant.objects.filter(role__name=ADMIN)
    assert {g.action for g in admin_grants} == set(Action)
    assert all(g.connection_id is None and not (g.schema or g.table or g.column) for g in admin_grants)
    assert list(Grant.objects.filter(role__name=AUDITOR).values_list("action", flat=True)) == [Action.AUDIT_VIEW]
    assert not Grant.objects.filter(role__name__in=[EDITOR, VIEWER]).exists(), "templates start empty"
    assert RoleOptions.objects.filter(role__name__in=BUILTIN_ROLES).count() == 4


def test_T20_ensure_builtin_roles_is_idempotent_and_keeps_admin_changes(shop):
    grant_template(None, None, Group.objects.get(name=VIEWER), shop)
    options = RoleOptions.objects.get(role__name=VIEWER)
    options.description = "Our read-only staff"
    options.save()
    before = sorted(Grant.objects.values_list("role__name", "action", "connection_id"))
    ensure_builtin_roles()
    ensure_builtin_roles()
    assert sorted(Grant.objects.values_list("role__name", "action", "connection_id")) == before
    assert RoleOptions.objects.get(role__name=VIEWER).description == "Our read-only staff"


def test_T20_fixed_grants_of_admin_and_auditor_cannot_change(shop, boss, request_of, events):
    for name in (ADMIN, AUDITOR):
        group = Group.objects.get(name=name)
        with pytest.raises(ValidationError, match="fixed"):
            add_grant(boss, request_of(boss), group, Action.VIEW, shop)
        with pytest.raises(ValidationError, match="fixed"):
            remove_grant(boss, request_of(boss), group.grants.first())
    assert events.new() == []


@pytest.mark.parametrize("name", BUILTIN_ROLES)
def test_T20_builtin_roles_cannot_be_renamed_or_deleted(name, boss, request_of, events):
    group = Group.objects.get(name=name)
    with pytest.raises(ValidationError, match="cannot be renamed"):
        update_role(boss, request_of(boss), group, name + "2")
    with pytest.raises(ValidationError, match="cannot be deleted"):
        delete_role(boss, request_of(boss), group)
    assert events.new() == []
    update_role(boss, request_of(boss), group, name, "New words")  # the description may change
    assert events.one().action == "role.updated"


# --- grants ------------------------------------------------------------------------------


def test_T20_add_grant_writes_one_event_naming_who_what_and_whom(shop, boss, request_of, events):
    support = create_role(boss, request_of(boss), "Support")
    events = Events()
    grant = add_grant(boss, request_of(boss), support, Action.VIEW, shop, "", "customers", "card",
                      ColumnMode.MASKED, MaskRule.LAST4)
    event = events.one()
    assert (event.action, event.actor, event.ip, event.target) == ("grant.added", "boss", "192.0.2.7", "Support")
    assert event.details == {
        "role": "Support", "role_id": support.pk, "action": "view",
        "scope": {"connection_id": shop.pk, "connection": "shop", "schema": "", "table": "customers",
                  "column": "card"},
        "column_mode": "masked", "mask_rule": "last4"}
    assert grant.created_by == boss


def test_T20_remove_grant_writes_one_event_and_takes_effect_at_once(shop, boss, request_of):
    support = create_role(boss, request_of(boss), "Support")
    grant = add_grant(boss, request_of(boss), support, Action.EXPORT, shop)
    member = User.objects.create_user("mia", password=None)
    add_member(boss, request_of(boss), support, member)
    assert check(User.objects.get(pk=member.pk), Action.EXPORT, Resource(shop.pk))
    events = Events()
    remove_grant(boss, request_of(boss), grant)
    event = events.one()
    assert (event.action, event.target, event.details["action"]) == ("grant.removed", "Support", "export")
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert not check(User.objects.get(pk=member.pk), Action.EXPORT, Resource(shop.pk))


@pytest.mark.parametrize(("scope", "message"), [
    ({"action": Action.VIEW, "connection": None}, "only the Admin role"),
    ({"action": Action.QUERY_WRITE, "connection": None}, "only the Admin role"),
    ({"action": Action.MANAGE, "connection": "shop"}, "This action is global"),
    ({"action": Action.AUDIT_VIEW, "connection": "shop", "table": "orders"}, "This action is global"),
    ({"action": Action.VIEW, "connection": "shop", "column": "total"}, "needs its table"),
    ({"action": Action.DELETE, "connection": "shop", "table": "orders", "column": "total"}, "Only view, insert"),
    ({"action": Action.VIEW, "connection": "shop", "table": "orders", "column": "total"}, "Choose how"),
    ({"action": Action.VIEW, "connection": "shop", "table": "orders", "column": "total",
      "column_mode": ColumnMode.MASKED}, "Choose a masking rule"),
    ({"action": Action.VIEW, "connection": "shop", "table": "orders", "column": "total",
      "column_mode": ColumnMode.VISIBLE, "mask_rule": MaskRule.FIXED}, "only to masked"),
    ({"action": Action.VIEW, "connection": "shop", "column_mode": ColumnMode.HIDDEN}, "single column"),
    ({"action": Action.UPDATE, "connection": "shop", "table": "orders", "column": "total",
      "column_mode": ColumnMode.VISIBLE}, "single column"),
    ({"action": Action.VIEW, "connection": "shop", "table": " orders"}, "spaces"),
    ({"action": "superpower", "connection": "shop"}, "not a valid choice"),
])
def test_T20_inconsistent_or_too_wide_grants_are_refused(scope, message, shop, boss, request_of, events):
    support = create_role(boss, request_of(boss), "Support")
    events = Events()
    arguments = {**scope, "connection": shop if scope.get("connection") == "shop" else None}
    with pytest.raises(ValidationError, match=message):
        add_grant(boss, request_of(boss), support, **arguments)
    assert not support.grants.exists()
    assert events.new() == []


def test_T20_the_same_grant_twice_is_refused(shop, boss, request_of):
    support = create_role(boss, request_of(boss), "Support")
    add_grant(boss, request_of(boss), support, Action.VIEW, shop, table="orders")
    with pytest.raises(ValidationError, match="already exists"):
        add_grant(boss, request_of(boss), support, Action.VIEW, shop, table="orders")


def test_T20_grant_template_gives_viewer_and_editor_their_actions_in_one_event(shop, boss, request_of):
    for name in (VIEWER, EDITOR):
        events = Events()
        role = Group.objects.get(name=name)
        grants = grant_template(boss, request_of(boss), role, shop)
        assert {g.action for g in grants} == set(TEMPLATES[name])
        assert all(g.connection == shop and not (g.schema or g.table or g.column) for g in grants)
        event = events.one()
        assert event.action == "grant.template_applied"
        assert event.details["actions"] == [str(a) for a in TEMPLATES[name]]
        assert grant_template(boss, request_of(boss), role, shop) == [], "applying twice adds nothing"
    assert set(TEMPLATES[VIEWER]) == {Action.VIEW, Action.QUERY, Action.EXPORT}
    assert set(TEMPLATES[EDITOR]) == {Action.VIEW, Action.INSERT, Action.UPDATE, Action.DELETE, Action.QUERY,
                                      Action.EXPORT, Action.IMPORT}


def test_T20_grant_template_applies_to_custom_roles_by_name(shop, boss, request_of):
    analysts = create_role(boss, request_of(boss), "Analysts")
    assert {g.action for g in grant_template(boss, request_of(boss), analysts, shop, VIEWER)} == set(
        TEMPLATES[VIEWER])
    with pytest.raises(ValidationError, match="no grant template"):
        grant_template(boss, request_of(boss), analysts, shop)


# --- only audited services change access ------------------------------------------------------


def test_T20_services_refuse_an_actor_without_manage(shop, request_of, events):
    support = Group.objects.create(name="Support")
    viewer = User.objects.create_user("vera", password=None)
    viewer.groups.add(Group.objects.get(name=VIEWER))
    grant_template(None, None, Group.objects.get(name=VIEWER), shop)
    events = Events()
    request = request_of(viewer)
    attempts = [
        lambda: add_grant(viewer, request, support, Action.VIEW, shop),
        lambda: add_grant(None, request, support, Action.VIEW, shop),  # the request's user is the actor
        lambda: grant_template(viewer, request, Group.objects.get(name=EDITOR), shop),
        lambda: remove_grant(viewer, request, Grant.objects.filter(role__name=VIEWER).first()),
        lambda: create_role(viewer, request, "Mine"),
        lambda: update_role(viewer, request, support, "Renamed"),
        lambda: delete_role(viewer, request, support),
        lambda: add_member(viewer, request, Group.objects.get(name=ADMIN), viewer),
        lambda: remove_member(viewer, request, Group.objects.get(name=VIEWER), viewer),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()
    assert events.new() == []
    assert not support.grants.exists() and Group.objects.filter(name="Support").exists()
    assert not viewer.groups.filter(name=ADMIN).exists()


def test_T20_grants_cannot_be_written_around_the_services(shop):
    support = Group.objects.create(name="Support")
    with pytest.raises(GrantWriteRefused):
        Grant.objects.create(role=support, action=Action.VIEW, connection=shop)
    with pytest.raises(GrantWriteRefused):
        Grant(role=support, action=Action.VIEW, connection=shop).save()
    with pytest.raises(GrantWriteRefused):
        Grant.objects.bulk_create([Grant(role=support, action=Action.VIEW, connection=shop)])
    auditor_grant = Grant.objects.get(role__name=AUDITOR)
    with pytest.raises(GrantWriteRefused):
        Grant.objects.filter(pk=auditor_grant.pk).update(action=Action.MANAGE)
    with pytest.raises(GrantWriteRefused):
        Grant.objects.filter(role__name=ADMIN).delete()
    with pytest.raises(GrantWriteRefused):
        auditor_grant.delete()
    assert not support.grants.exists()
    assert Grant.objects.get(pk=auditor_grant.pk).action == Action.AUDIT_VIEW
    assert Grant.objects.filter(role__name=ADMIN).count() == len(Action)


# --- roles and membership -----------------------------------------------------------------------


def test_T20_role_life_cycle_is_audited_one_event_each(shop, boss, request_of):
    events = Events()
    role = create_role(boss, request_of(boss), "  Support ", "First line")
    created = events.one()
    assert (created.action, created.target, created.after) == (
        "role.created", "Support", {"name": "Support", "description": "First line"})
    assert not role.grants.exists(), "a new role starts with nothing (default deny)"

    events = Events()
    update_role(boss, request_of(boss), role, "Helpdesk", "Second line")
    updated = events.one()
    assert (updated.action, updated.before["name"], updated.after["name"]) == ("role.updated", "Support",
                                                                               "Helpdesk")

    add_grant(boss, request_of(boss), role, Action.VIEW, shop)
    member = User.objects.create_user("mia", password=None)
    events = Events()
    add_member(boss, request_of(boss), role, member)
    added = events.one()
    assert (added.action, added.target, added.details["role"]) == ("role.member_added", "mia", "Helpdesk")

    events = Events()
    delete_role(boss, request_of(boss), role)
    deleted = events.one()
    assert deleted.action == "role.deleted"
    assert deleted.details["members"] == ["mia"]
    assert deleted.details["grants"] == ["Helpdesk: view on shop"]
    assert not Grant.objects.filter(role_id=role.pk).exists()
    assert not check(User.objects.get(pk=member.pk), Action.VIEW, Resource(shop.pk))


@pytest.mark.parametrize("name", ["support", "SUPPORT", "admin", "Viewer", "  ", "x" * 151])
def test_T20_role_names_are_unique_in_any_case(name, boss, request_of):
    create_role(boss, request_of(boss), "Support")
    with pytest.raises(ValidationError):
        create_role(boss, request_of(boss), name)


def test_T20_membership_changes_are_audited_and_immediate(shop, boss, request_of):
    grant_template(boss, request_of(boss), Group.objects.get(name=VIEWER), shop)
    member = User.objects.create_user("mia", password=None)
    viewers = Group.objects.get(name=VIEWER)
    assert not check(member, Action.VIEW, Resource(shop.pk))
    add_member(boss, request_of(boss), viewers, member)
    assert check(member, Action.VIEW, Resource(shop.pk)), "the changed user object is not stale"
    with pytest.raises(ValidationError, match="already a member"):
        add_member(boss, request_of(boss), viewers, member)
    events = Events()
    remove_member(boss, request_of(boss), viewers, member)
    assert events.one().action == "role.member_removed"
    assert not check(member, Action.VIEW, Resource(shop.pk))
    with pytest.raises(ValidationError, match="not a member"):
        remove_member(boss, request_of(boss), viewers, member)


def test_T20_last_active_admin_keeps_the_admin_role(boss, request_of):
    admins = Group.objects.get(name=ADMIN)
    with pytest.raises(ValidationError, match="last active administrator"):
        remove_member(boss, request_of(boss), admins, boss)
    other = User.objects.create_user("other", password=None)
    add_member(boss, request_of(boss), admins, other)
    remove_member(boss, request_of(boss), admins, boss)
    assert not boss.groups.filter(name=ADMIN).exists()


# --- forms --------------------------------------------------------------------------------------------


def test_T20_grant_form_validates_like_the_model_and_feeds_the_service(shop, boss, request_of):
    support = Group.objects.create(name="Support")
    refused = GrantForm({"role": support.pk, "action": "view"})
    assert not refused.is_valid()
    assert "only the Admin role" in str(refused.errors["connection"])
    masked = GrantForm({"role": support.pk, "action": "view", "connection": shop.pk, "table": "customers",
                        "column": "card", "column_mode": "masked"})
    assert not masked.is_valid() and "mask_rule" in masked.errors
    form = GrantForm({"role": support.pk, "action": "view", "connection": shop.pk, "table": "customers",
                      "column": "card", "column_mode": "masked", "mask_rule": "last4"})
    assert form.is_valid(), form.errors
    grant = add_grant(boss, request_of(boss), **form.cleaned_data)
    assert (grant.column, grant.mask_rule) == ("card", "last4")
    assert not GrantForm({"role": Group.objects.get(name=ADMIN).pk, "action": "view",
                          "connection": shop.pk}).is_valid(), "fixed roles are not offered"


def test_T20_role_form_and_member_form(boss):
    assert not RoleForm({"name": "viewer"}).is_valid()
    assert RoleForm({"name": "Support", "description": "x"}).is_valid()
    viewers = Group.objects.get(name=VIEWER)
    assert not RoleForm({"name": "Readers"}, role=viewers).is_valid(), "built-in roles keep their names"
    assert RoleForm({"name": "Viewer", "description": "ours"}, role=viewers).is_valid()
    User.objects.create_user("gone", password=None, is_active=False)
    assert MemberForm({"user": "boss"}).is_valid()
    assert not MemberForm({"user": "gone"}).is_valid()
