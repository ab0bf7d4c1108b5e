"""The one policy function: default deny, scope containment, column modes, bounded queries (T20, T31)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group

from bastion.access.models import Action, ColumnMode, MaskRule
from bastion.access.policy import (
    ColumnView,
    Resource,
    allowed_actions,
    can_write_column,
    check,
    column_mode,
    column_modes,
    forget_grants,
    table_access,
    visible_connection_ids,
    visible_connections,
    visible_tables,
)
from bastion.access.roles import ADMIN, AUDITOR, add_grant
from bastion.connections.models import Connection

pytestmark = pytest.mark.django_db

DATA_ACTIONS = [a for a in Action if a not in (Action.MANAGE, Action.AUDIT_VIEW)]


def connection(name: str) -> Connection:
    return Connection.objects.create(name=name, engine="sqlite", sqlite_path=f"/srv/{name}.db")


def member(*roles: Group, username: str = "member", **extra) -> object:
    user = get_user_model().objects.create_user(username=username, password=None, **extra)
    user.groups.add(*roles)
    return user


def role(name: str) -> Group:
    return Group.objects.create(name=name)


def grant(group: Group, action: Action, conn: Connection | None = None, schema: str = "", table: str = "",
          column: str = "", mode: str = "", rule: str = "") -> None:
    add_grant(None, None, group, action, conn, schema, table, column, mode, rule)


def fresh(user):
    """The same account as a new request would load it: nothing cached."""
    forget_grants(user)
    return user


@pytest.fixture
def shop():
    return connection("shop")


@pytest.fixture
def other():
    return connection("other")


def every_resource(conn: Connection) -> list[Resource]:
    return [Resource(), Resource(conn.pk), Resource(conn.pk, "public"), Resource(conn.pk, None, "orders"),
            Resource(conn.pk, "public", "orders", "total")]


# --- default deny -------------------------------------------------------------------


def test_T20_user_without_roles_may_do_nothing(shop):
    user = member()
    for resource in every_resource(shop):
        assert allowed_actions(user, resource) == frozenset(), resource


def test_T20_role_without_grants_gives_nothing(shop):
    user = member(role("Empty"))
    assert not any(check(user, a, r) for a in Action for r in every_resource(shop))


def test_T20_anonymous_and_inactive_users_are_denied_whatever_their_grants(shop):
    staff = role("Staff")
    grant(staff, Action.VIEW, shop)
    grant(staff, Action.MANAGE)
    inactive = member(staff, is_active=False)
    for user in (AnonymousUser(), None, inactive):
        assert not check(user, Action.VIEW, Resource(shop.pk))
        assert not check(user, Action.MANAGE)
        assert visible_connection_ids(user) == frozenset()
        assert visible_tables(user, shop.pk, None, ["orders"]) == []
        assert column_mode(user, Resource(shop.pk, None, "orders", "id")).mode == ColumnMode.HIDDEN


def test_T20_superuser_may_do_everything(shop):
    root = member(is_superuser=True)
    for resource in every_resource(shop):
        assert allowed_actions(root, resource) == frozenset(Action)
    assert visible_connection_ids(root) == {shop.pk}


def test_T20_unknown_action_is_an_error_not_a_silent_yes(shop):
    with pytest.raises(ValueError, match="not a valid Action"):
        check(member(is_superuser=True), "drop_everything", Resource(shop.pk))


# --- scope containment ----------------------------------------------------------------


def test_T20_connection_grant_covers_everything_inside_it_and_nothing_outside(shop, other):
    viewers = role("ShopViewers")
    grant(viewers, Action.VIEW, shop)
    user = member(viewers)
    for resource in every_resource(shop)[1:]:
        assert check(user, Action.VIEW, resource), resource
    for resource in every_resource(other):
        assert not check(user, Action.VIEW, resource), resource
    assert not check(user, Action.VIEW, Resource()), "a connection grant is not a global grant"


def test_T20_schema_grant_covers_its_tables_not_other_schemas_or_the_connection(shop):
    analysts = role("Analysts")
    grant(analysts, Action.VIEW, shop, schema="sales")
    user = member(analysts)
    assert check(user, Action.VIEW, Resource(shop.pk, "sales"))
    assert check(user, Action.VIEW, Resource(shop.pk, "sales", "orders", "total"))
    assert not check(user, Action.VIEW, Resource(shop.pk, "hr", "orders"))
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "orders")), "default schema is not 'sales'"
    assert not check(user, Action.VIEW, Resource(shop.pk))


def test_T20_table_grant_covers_its_columns_not_other_tables_or_the_schema(shop):
    clerks = role("Clerks")
    grant(clerks, Action.DELETE, shop, table="orders")
    user = member(clerks)
    assert check(user, Action.DELETE, Resource(shop.pk, None, "orders"))
    assert check(user, Action.DELETE, Resource(shop.pk, "public", "orders")), "empty schema: every schema"
    assert not check(user, Action.DELETE, Resource(shop.pk, None, "customers"))
    assert not check(user, Action.DELETE, Resource(shop.pk, "public"))
    assert not check(user, Action.DELETE, Resource(shop.pk))


def test_T20_a_grant_gives_exactly_its_action(shop):
    readers = role("Readers")
    grant(readers, Action.QUERY, shop)
    user = member(readers)
    assert allowed_actions(user, Resource(shop.pk, None, "orders")) == {Action.QUERY}


def test_T20_global_actions_come_only_from_global_grants(shop):
    owners = role("Owners")
    for action in DATA_ACTIONS:
        grant(owners, action, shop)
    user = member(owners)
    assert not check(user, Action.MANAGE)
    assert not check(user, Action.AUDIT_VIEW, Resource(shop.pk))
    managers = role("Managers")
    grant(managers, Action.MANAGE)
    manager = member(managers, username="manager")
    assert check(manager, Action.MANAGE)
    assert check(manager, Action.MANAGE, Resource(shop.pk)), "a global grant covers every resource"
    assert not check(manager, Action.VIEW, Resource(shop.pk)), "manage is not a data grant"


def test_T20_admin_role_reaches_every_connection_without_being_superuser(shop, other):
    admin = member(Group.objects.get(name=ADMIN))
    assert not admin.is_superuser
    for conn in (shop, other):
        for resource in every_resource(conn):
            assert allowed_actions(admin, resource) == frozenset(Action), resource
    assert visible_connection_ids(admin) == {shop.pk, other.pk}
    assert set(visible_connections(admin)) == {shop, other}


def test_T20_auditor_reads_the_audit_log_and_nothing_else(shop):
    auditor = member(Group.objects.get(name=AUDITOR))
    assert allowed_actions(auditor, Resource()) == {Action.AUDIT_VIEW}
    for resource in every_resource(shop)[1:]:
        assert allowed_actions(auditor, resource) == {Action.AUDIT_VIEW}
    assert visible_connection_ids(auditor) == frozenset()


def test_T20_resource_must_name_its_parents():
    with pytest.raises(ValueError, match="needs its table"):
        Resource(1, None, None, "total")
    with pytest.raises(ValueError, match="needs its connection"):
        Resource(None, None, "orders")
    assert Resource(1, "", "orders", "") == Resource(1, None, "orders", None)


def test_T20_user_sees_only_connections_and_tables_granted(shop, other):
    clerks = role("Clerks")
    grant(clerks, Action.VIEW, shop, table="orders")
    grant(clerks, Action.UPDATE, shop, table="customers", column="email")
    grant(clerks, Action.VIEW, other, table="payroll", column="salary", mode=ColumnMode.HIDDEN)
    user = member(clerks)
    assert visible_connection_ids(user) == {shop.pk}, "a 'hidden' column rule alone shows nothing"
    assert list(visible_connections(user)) == [shop]
    assert visible_tables(user, shop.pk, None, ["products", "orders", "customers"]) == ["orders", "customers"]
    assert visible_tables(user, other.pk, None, ["payroll"]) == []


# --- column modes (T31) -----------------------------------------------------------------


COLUMNS = ["id", "name", "email", "card", "salary"]


def modes(user, conn, table="customers"):
    return {name: view.mode for name, view in column_modes(fresh(user), conn.pk, None, table, COLUMNS).items()}


def test_T31_table_view_shows_every_column_a_column_rule_masks_or_hides(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop, table="customers")
    user = member(support)
    assert set(modes(user, shop).values()) == {ColumnMode.VISIBLE}
    grant(support, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.MASKED,
          rule=MaskRule.LAST4)
    grant(support, Action.VIEW, shop, table="customers", column="salary", mode=ColumnMode.HIDDEN)
    views = column_modes(fresh(user), shop.pk, None, "customers", COLUMNS)
    assert views["card"] == ColumnView(ColumnMode.MASKED, MaskRule.LAST4)
    assert views["salary"] == ColumnView(ColumnMode.HIDDEN, None)
    assert views["email"] == ColumnView(ColumnMode.VISIBLE, None)


def test_T31_no_view_grant_on_the_table_hides_every_column(shop):
    writers = role("Writers")
    grant(writers, Action.INSERT, shop, table="customers")
    grant(writers, Action.VIEW, shop, table="orders")
    assert set(modes(member(writers), shop).values()) == {ColumnMode.HIDDEN}


def test_T31_most_permissive_role_wins(shop):
    masked, visible, hidden = role("Masked"), role("Visible"), role("Hidden")
    for group in (masked, visible, hidden):
        grant(group, Action.VIEW, shop, table="customers")
    grant(masked, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.MASKED,
          rule=MaskRule.FIXED)
    grant(hidden, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.HIDDEN)
    grant(masked, Action.VIEW, shop, table="customers", column="salary", mode=ColumnMode.MASKED,
          rule=MaskRule.FIXED)
    grant(hidden, Action.VIEW, shop, table="customers", column="salary", mode=ColumnMode.HIDDEN)
    grant(visible, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.VISIBLE)
    assert modes(member(masked, hidden, username="mh"), shop)["card"] == ColumnMode.MASKED
    assert modes(member(hidden, username="h"), shop)["card"] == ColumnMode.HIDDEN
    assert modes(member(masked, visible, hidden, username="all"), shop)["card"] == ColumnMode.VISIBLE
    # The Visible role has no rule for salary: its table grant shows it in clear.
    assert modes(member(masked, visible, username="mv"), shop)["salary"] == ColumnMode.VISIBLE


def test_T31_least_revealing_mask_loses_to_a_partial_one_across_roles(shop):
    fixed, last4 = role("Fixed"), role("Last4")
    for group, rule in ((fixed, MaskRule.FIXED), (last4, MaskRule.LAST4)):
        grant(group, Action.VIEW, shop, table="customers")
        grant(group, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.MASKED, rule=rule)
    user = member(fixed, last4)
    assert column_mode(user, Resource(shop.pk, None, "customers", "card")) == ColumnView(ColumnMode.MASKED,
                                                                                          MaskRule.LAST4)


def test_T31_within_a_role_the_most_specific_rule_wins(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop)
    grant(support, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.HIDDEN)
    grant(support, Action.VIEW, shop, schema="eu", table="customers", column="card", mode=ColumnMode.MASKED,
          rule=MaskRule.LAST4)
    user = member(support)
    assert column_mode(user, Resource(shop.pk, "eu", "customers", "card")).mode == ColumnMode.MASKED
    assert column_mode(user, Resource(shop.pk, "us", "customers", "card")).mode == ColumnMode.HIDDEN


def test_T31_column_grants_alone_show_just_those_columns(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop, table="customers", column="name", mode=ColumnMode.VISIBLE)
    grant(support, Action.VIEW, shop, table="customers", column="email", mode=ColumnMode.MASKED,
          rule=MaskRule.EMAIL_DOMAIN)
    user = member(support)
    assert modes(user, shop) == {"id": ColumnMode.HIDDEN, "name": ColumnMode.VISIBLE, "email": ColumnMode.MASKED,
                                 "card": ColumnMode.HIDDEN, "salary": ColumnMode.HIDDEN}
    assert check(user, Action.VIEW, Resource(shop.pk, None, "customers")), "the table page opens"
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "orders"))


def test_T31_check_on_a_masked_or_hidden_column_is_no(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop)
    grant(support, Action.QUERY, shop)
    grant(support, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.MASKED,
          rule=MaskRule.LAST4)
    grant(support, Action.VIEW, shop, table="customers", column="salary", mode=ColumnMode.HIDDEN)
    user = member(support)
    for column in ("card", "salary"):
        for action in (Action.VIEW, Action.QUERY):
            assert not check(user, action, Resource(shop.pk, None, "customers", column)), (column, action)
    assert check(user, Action.QUERY, Resource(shop.pk, None, "customers", "email"))


def test_T31_table_write_grant_does_not_reach_a_masked_or_hidden_column(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop, table="customers")
    grant(support, Action.UPDATE, shop, table="customers")
    grant(support, Action.VIEW, shop, table="customers", column="card", mode=ColumnMode.MASKED,
          rule=MaskRule.LAST4)
    grant(support, Action.VIEW, shop, table="customers", column="salary", mode=ColumnMode.HIDDEN)
    user = member(support)

    def updatable(column: str) -> bool:
        return can_write_column(fresh(user), Action.UPDATE, Resource(shop.pk, None, "customers", column))

    assert updatable("email")
    assert not updatable("card")
    assert not updatable("salary")
    assert not can_write_column(user, Action.INSERT, Resource(shop.pk, None, "customers", "email"))
    grant(support, Action.UPDATE, shop, table="customers", column="card")
    assert updatable("card"), "a write grant naming the column reaches it"
    assert check(fresh(user), Action.UPDATE, Resource(shop.pk, None, "customers", "card"))


def test_T31_column_write_grants_alone_reach_only_their_columns(shop):
    signup = role("Signup")
    grant(signup, Action.INSERT, shop, table="customers", column="email")
    user = member(signup)
    assert check(user, Action.INSERT, Resource(shop.pk, None, "customers")), "may insert rows giving email"
    assert can_write_column(user, Action.INSERT, Resource(shop.pk, None, "customers", "email"))
    assert not can_write_column(user, Action.INSERT, Resource(shop.pk, None, "customers", "name"))
    assert not check(user, Action.UPDATE, Resource(shop.pk, None, "customers"))


def test_T31_write_only_table_grant_reaches_every_column(shop):
    dropbox = role("Dropbox")
    grant(dropbox, Action.INSERT, shop, table="feedback")
    user = member(dropbox)
    assert can_write_column(user, Action.INSERT, Resource(shop.pk, None, "feedback", "body"))
    assert column_mode(user, Resource(shop.pk, None, "feedback", "body")).mode == ColumnMode.HIDDEN


# --- restrictions match every spelling of the column; widening grants stay exact (T31) --------


def test_T31_hidden_column_stays_hidden_whatever_spelling_of_the_default_schema(shop):
    """The review's proving case: a rule scoped to "public" also hides the column addressed as schema None."""
    support = role("Support")
    grant(support, Action.VIEW, shop)  # reads the whole database ...
    grant(support, Action.VIEW, shop, "public", "users", "ssn", ColumnMode.HIDDEN)  # ... but not this
    user = member(support)
    assert column_mode(user, Resource(shop.pk, "public", "users", "ssn")).mode == ColumnMode.HIDDEN
    forget_grants(user)
    # Same column on PostgreSQL, addressed without the schema (Resource: None = the default schema):
    assert column_mode(user, Resource(shop.pk, None, "users", "ssn")).mode == ColumnMode.HIDDEN
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "users", "ssn"))
    assert not check(user, Action.QUERY, Resource(shop.pk, None, "users", "ssn"))
    assert column_mode(user, Resource(shop.pk, "sales", "users", "ssn")).mode == ColumnMode.VISIBLE, \
        "a named other schema is a different column"


def test_T31_masked_column_stays_masked_whatever_spelling_of_the_default_schema(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop)
    grant(support, Action.VIEW, shop, "public", "users", "card", ColumnMode.MASKED, MaskRule.LAST4)
    user = member(support)
    assert column_mode(user, Resource(shop.pk, None, "users", "card")) == ColumnView(ColumnMode.MASKED,
                                                                                     MaskRule.LAST4)
    assert column_mode(user, Resource(shop.pk, "PUBLIC", "users", "card")).mode == ColumnMode.MASKED
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "users", "card"))


SPELLINGS = [("users", "ssn", "Users", "SSN"), ("Users", "SSN", "users", "ssn"), ("USERS", "ssn", "users", "Ssn")]


@pytest.mark.parametrize(("rule_table", "rule_column", "table", "column"), SPELLINGS)
@pytest.mark.parametrize("schema", [None, "public"])
def test_T31_hidden_rule_matches_table_and_column_names_case_insensitively(shop, rule_table, rule_column, table,
                                                                            column, schema):
    support = role("Support")
    grant(support, Action.VIEW, shop)
    grant(support, Action.VIEW, shop, "public", rule_table, rule_column, ColumnMode.HIDDEN)
    user = member(support)
    assert column_mode(user, Resource(shop.pk, schema, table, column)).mode == ColumnMode.HIDDEN
    assert column_modes(user, shop.pk, schema, table, [column, "name"]) == {column: ColumnView(ColumnMode.HIDDEN, None),
                                                                          "name": ColumnView(ColumnMode.VISIBLE, None)}
    assert not check(user, Action.VIEW, Resource(shop.pk, schema, table, column))


@pytest.mark.parametrize(("rule_table", "rule_column", "table", "column"), SPELLINGS)
def test_T31_masked_rule_matches_table_and_column_names_case_insensitively(shop, rule_table, rule_column, table,
                                                                            column):
    support = role("Support")
    grant(support, Action.VIEW, shop, table=table)
    grant(support, Action.UPDATE, shop, table=table)
    grant(support, Action.VIEW, shop, table=rule_table, column=rule_column, mode=ColumnMode.MASKED,
          rule=MaskRule.FIXED)
    user = member(support)
    access = table_access(user, shop.pk, None, table, [column, "name"])
    assert access.columns[column] == ColumnView(ColumnMode.MASKED, MaskRule.FIXED)
    assert access.columns["name"].mode == ColumnMode.VISIBLE
    assert access.updatable == {"name"}, "a table-wide write grant does not reach the masked column"


def test_T31_loosely_matching_rules_restrict_but_never_widen(shop):
    """A masked rule that might be this column caps a clear view; it does not reveal a column never granted."""
    masked_only = role("MaskedOnly")
    grant(masked_only, Action.VIEW, shop, "public", "users", "card", ColumnMode.MASKED, MaskRule.LAST4)
    user = member(masked_only)
    assert column_mode(user, Resource(shop.pk, "public", "users", "card")).mode == ColumnMode.MASKED
    assert column_mode(user, Resource(shop.pk, None, "users", "card")).mode == ColumnMode.HIDDEN
    assert column_mode(user, Resource(shop.pk, "public", "USERS", "CARD")).mode == ColumnMode.HIDDEN
    visible_only = role("VisibleOnly")
    grant(visible_only, Action.VIEW, shop, "public", "users", "name", ColumnMode.VISIBLE)
    other_user = member(visible_only, username="other")
    assert column_mode(other_user, Resource(shop.pk, "public", "users", "name")).mode == ColumnMode.VISIBLE
    assert column_mode(other_user, Resource(shop.pk, None, "users", "name")).mode == ColumnMode.HIDDEN
    assert column_mode(other_user, Resource(shop.pk, "public", "users", "NAME")).mode == ColumnMode.HIDDEN


def test_T31_a_named_schema_restriction_beats_a_wildcard_clear_rule_for_the_default_schema(shop):
    support = role("Support")
    grant(support, Action.VIEW, shop)
    grant(support, Action.VIEW, shop, "", "users", "ssn", ColumnMode.VISIBLE)
    grant(support, Action.VIEW, shop, "public", "users", "ssn", ColumnMode.HIDDEN)
    user = member(support)
    assert column_mode(user, Resource(shop.pk, None, "users", "ssn")).mode == ColumnMode.HIDDEN
    assert column_mode(user, Resource(shop.pk, "sales", "users", "ssn")).mode == ColumnMode.VISIBLE
    # The exact spelling keeps the usual rule: a more specific clear rule still wins over a broad restriction.
    lenient = role("Lenient")
    grant(lenient, Action.VIEW, shop)
    grant(lenient, Action.VIEW, shop, "", "users", "ssn", ColumnMode.HIDDEN)
    grant(lenient, Action.VIEW, shop, "sales", "users", "ssn", ColumnMode.VISIBLE)
    other_user = member(lenient, username="other")
    assert column_mode(other_user, Resource(shop.pk, "sales", "users", "ssn")).mode == ColumnMode.VISIBLE
    assert column_mode(other_user, Resource(shop.pk, None, "users", "ssn")).mode == ColumnMode.HIDDEN
    assert column_mode(other_user, Resource(shop.pk, "sales", "users", "SSN")).mode == ColumnMode.HIDDEN


def test_T31_write_only_exception_does_not_apply_when_a_view_grant_might_cover_the_table(shop):
    """Hidden column + table-wide write: blind writes only for users who cannot view the table at all."""
    support = role("Support")
    grant(support, Action.VIEW, shop, schema="public")
    grant(support, Action.UPDATE, shop)
    grant(support, Action.VIEW, shop, "public", "users", "ssn", ColumnMode.HIDDEN)
    user = member(support)
    assert not can_write_column(user, Action.UPDATE, Resource(shop.pk, "public", "users", "ssn"))
    assert not can_write_column(user, Action.UPDATE, Resource(shop.pk, None, "users", "ssn"))
    assert not can_write_column(user, Action.UPDATE, Resource(shop.pk, "public", "Users", "SSN"))
    assert can_write_column(user, Action.UPDATE, Resource(shop.pk, "public", "users", "email"))
    # Under schema None the view grant on "public" does not show email (widening is exact), but it might
    # be the same table, so the write-only exception does not apply either: no blind write.
    assert not can_write_column(user, Action.UPDATE, Resource(shop.pk, None, "users", "email"))


def test_T20_widening_grants_compare_exactly(shop):
    analysts = role("Analysts")
    grant(analysts, Action.VIEW, shop, schema="sales")
    grant(analysts, Action.DELETE, shop, table="Orders")
    grant(analysts, Action.VIEW, shop, "sales", "users", "email", ColumnMode.VISIBLE)
    user = member(analysts)
    assert check(user, Action.VIEW, Resource(shop.pk, "sales", "orders", "total"))
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "orders")), "a grant on 'sales' is not the default"
    assert not check(user, Action.VIEW, Resource(shop.pk, None, "orders", "total"))
    assert not check(user, Action.VIEW, Resource(shop.pk, "SALES", "orders"))
    assert column_modes(user, shop.pk, None, "users", ["email", "id"]) == {"email": ColumnView(ColumnMode.HIDDEN, None),
                                                                        "id": ColumnView(ColumnMode.HIDDEN, None)}
    assert visible_tables(user, shop.pk, None, ["orders", "users"]) == []
    assert check(user, Action.DELETE, Resource(shop.pk, None, "Orders"))
    assert not check(user, Action.DELETE, Resource(shop.pk, None, "orders")), "table names widen exactly"


# --- caching and bounded queries -----------------------------------------------------------


def test_T20_effective_table_permissions_cost_one_query_whatever_the_size(shop, django_assert_max_num_queries):
    roles = [role(f"Role{i}") for i in range(5)]
    for group in roles:
        grant(group, Action.VIEW, shop, table="wide")
        grant(group, Action.UPDATE, shop, table="wide")
        for c in range(40):  # every role masks c0..c39
            grant(group, Action.VIEW, shop, table="wide", column=f"c{c}", mode=ColumnMode.MASKED,
                  rule=MaskRule.FIXED)
    user = member(*roles)
    columns = [f"c{n}" for n in range(300)]
    tables = [f"t{n}" for n in range(300)] + ["wide"]
    with django_assert_max_num_queries(1):
        access = table_access(user, shop.pk, None, "wide", columns)
        visible_tables(user, shop.pk, None, tables)
        for name in columns:
            check(user, Action.VIEW, Resource(shop.pk, None, "wide", name))
    assert Action.UPDATE in access.actions
    assert access.columns["c0"].mode == ColumnMode.MASKED and access.columns["c150"].mode == ColumnMode.VISIBLE
    assert "c0" not in access.updatable and "c150" in access.updatable
    assert access.insertable == frozenset()


def test_T20_grants_are_cached_per_user_object_only(shop):
    viewers = role("Viewers2")
    user = member(viewers)
    assert not check(user, Action.VIEW, Resource(shop.pk))
    grant(viewers, Action.VIEW, shop)
    assert not check(user, Action.VIEW, Resource(shop.pk)), "this object keeps what it loaded"
    reloaded = get_user_model().objects.get(pk=user.pk)  # what the next request gets
    assert check(reloaded, Action.VIEW, Resource(shop.pk))
