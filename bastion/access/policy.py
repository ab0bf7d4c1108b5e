"""The one policy: every permission question in Bastion is answered here.

Rules, in order:
- anonymous and inactive users may do nothing;
- superusers may do everything (they are members of the Admin role anyway, whose
  grants cover every connection; the shortcut also keeps the first admin in
  when the grant tables are damaged);
- everybody else: default deny. A grant matches when its action is the action
  asked about and its scope contains the resource. Empty scope fields are
  wildcards: a grant on connection X covers X's schemas, tables and columns.

Columns: a view grant on a table (or anything wider) shows its columns in
clear unless a column grant of the same role says hidden or masked; across
roles the most permissive mode wins (visible > masked > hidden). A role with
only column grants on a table sees just those columns.

Spelling (fail closed): grants that WIDEN access match exactly, so a grant on
schema "sales" or table "Orders" covers neither the default schema (None) nor
"orders". RESTRICTIONS (a column rule whose mode is not visible) match every
spelling that could name the same column: schema None (the default schema)
and a named schema match each other, and names compare casefolded (SQLite and
often MySQL ignore case). A loosely matching restriction only lowers a role's
view of a column, never raises it: see _Grant.may_be_inside and _column_views.

A user's grants are read in one query the first time they are needed and
cached on that user object. Django loads a fresh user for every request, so
the cache never outlives a request and a revoked grant is gone at the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db.models import QuerySet

from bastion.access.models import (
    COLUMN_ACTIONS,
    GLOBAL_ACTIONS,
    MODE_RANK,
    Action,
    ColumnMode,
    Grant,
    MaskRule,
)
from bastion.connections.models import Connection

_CACHE_ATTRIBUTE = "_bastion_grants"
WRITE_COLUMN_ACTIONS = frozenset({Action.INSERT, Action.UPDATE})
# When roles mask a column with different rules, the user gets the first of these they hold.
_MASK_PREFERENCE = (MaskRule.LAST4, MaskRule.EMAIL_DOMAIN, MaskRule.FIXED)


@dataclass(frozen=True)
class Resource:
    """What an action is about. All None: the whole installation (global actions).

    ``schema`` None means the connection's default schema when a table is named,
    and every schema when none is. Empty strings are read as None.
    """

    connection_id: int | None = None
    schema: str | None = None
    table: str | None = None
    column: str | None = None

    def __post_init__(self) -> None:
        for name in ("schema", "table", "column"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        if self.column is not None and self.table is None:
            raise ValueError("a column resource needs its table")
        if (self.schema is not None or self.table is not None) and self.connection_id is None:
            raise ValueError("a schema or table resource needs its connection")

    def table_resource(self) -> Resource:
        return Resource(self.connection_id, self.schema, self.table)


class ColumnView(NamedTuple):
    """How one column is shown to one user."""

    mode: ColumnMode
    mask_rule: MaskRule | None


VISIBLE = ColumnView(ColumnMode.VISIBLE, None)
HIDDEN = ColumnView(ColumnMode.HIDDEN, None)


@dataclass(frozen=True)
class _Grant:
    role_id: int
    action: str
    connection_id: int | None
    schema: str
    table: str
    column: str
    column_mode: str
    mask_rule: str

    def contains(self, resource: Resource) -> bool:
        if self.connection_id is None:
            return True  # a global grant: the Admin role's, or a global action
        if resource.connection_id != self.connection_id:
            return False
        return all(not mine or mine == theirs for mine, theirs in (
            (self.schema, resource.schema), (self.table, resource.table), (self.column, resource.column)))

    def may_contain(self, resource: Resource) -> bool:
        """Could this grant's scope be ``resource`` under another spelling? For restrictions only.

        Like contains, but a named schema and None (the default schema) match
        each other, and names compare casefolded: a restriction must apply
        whenever it might be about the same object. Never use this to widen access.
        """
        if self.connection_id is None:
            return True
        if resource.connection_id != self.connection_id:
            return False
        if self.schema and resource.schema is not None and self.schema.casefold() != resource.schema.casefold():
            return False
        return all(not mine or (theirs is not None and mine.casefold() == theirs.casefold()) for mine, theirs in (
            (self.table, resource.table), (self.column, resource.column)))

    def inside(self, table: Resource) -> bool:
        """A column grant on one of ``table``'s columns."""
        return bool(self.column) and self.contains(Resource(table.connection_id, table.schema, table.table,
                                                            self.column))

    def may_be_inside(self, table: Resource) -> bool:
        """A column grant that might be on one of ``table``'s columns (may_contain's loose spelling)."""
        return bool(self.column) and self.may_contain(Resource(table.connection_id, table.schema, table.table,
                                                               self.column))

    @property
    def specificity(self) -> int:
        return (self.connection_id is not None) + bool(self.schema) + bool(self.table) + bool(self.column)

    @property
    def restricts(self) -> bool:
        """A column rule that shows less than clear (hidden, masked, or an unknown mode: fail closed)."""
        return bool(self.column) and self.column_mode != ColumnMode.VISIBLE

    @property
    def hides(self) -> bool:
        """A pure restriction: says nothing is shown."""
        return self.action == Action.VIEW and self.column_mode == ColumnMode.HIDDEN


def _is_member(user: Any) -> bool:
    return bool(user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False))


def _grants(user: Any) -> tuple[_Grant, ...]:
    cached = getattr(user, _CACHE_ATTRIBUTE, None)
    if cached is None:
        rows = Grant.objects.filter(role__user=user).order_by().values_list(
            "role_id", "action", "connection_id", "schema", "table", "column", "column_mode", "mask_rule")
        cached = tuple(_Grant(*row) for row in rows)
        setattr(user, _CACHE_ATTRIBUTE, cached)
    return cached


def forget_grants(user: Any) -> None:
    """Drop the grants cached on this user object (after changing its roles in the same request)."""
    if user is not None and hasattr(user, _CACHE_ATTRIBUTE):
        delattr(user, _CACHE_ATTRIBUTE)


def check(user: Any, action: Action | str, resource: Resource | None = None) -> bool:
    """May ``user`` do ``action`` on ``resource``? The one question every view and service asks.

    For a column resource: view and other reads need the column in clear
    (masked counts as no, so a caller cannot leak it by mistake: use
    column_modes to render masked values); insert and update go through
    can_write_column. For a table resource, view/insert/update also pass when
    the user holds those actions on some of its columns only.
    """
    action = Action(action)
    resource = resource or Resource()
    if not _is_member(user):
        return False
    if user.is_superuser:
        return True
    grants = _grants(user)
    if action in GLOBAL_ACTIONS:
        return any(g.action == action for g in grants)
    if resource.column is not None:
        if action in WRITE_COLUMN_ACTIONS:
            return can_write_column(user, action, resource)
        if column_mode(user, resource).mode != ColumnMode.VISIBLE:
            return False
        if action == Action.VIEW:
            return True
    if any(g.action == action and not g.column and g.contains(resource) for g in grants):
        return True
    if action in COLUMN_ACTIONS and resource.table is not None and resource.column is None:
        return any(g.action == action and not g.hides and g.inside(resource) for g in grants)
    return False


def _rule_view(rule: _Grant) -> ColumnView:
    if rule.column_mode == ColumnMode.VISIBLE:
        return VISIBLE
    if rule.column_mode == ColumnMode.MASKED:
        # A rule that lost its mask (written around Grant.clean) masks everything.
        rule_name = MaskRule(rule.mask_rule) if rule.mask_rule in MaskRule.values else MaskRule.FIXED
        return ColumnView(ColumnMode.MASKED, rule_name)
    return HIDDEN  # hidden, or anything unknown: fail closed


def _role_mode(broad: bool, rules: Iterable[_Grant]) -> ColumnView:
    rules = list(rules)
    if not rules:
        return VISIBLE if broad else HIDDEN
    # Within a role the most specific rule wins; between equally specific ones, the least revealing.
    top = max(g.specificity for g in rules)
    return _least(_rule_view(g) for g in rules if g.specificity == top)


def _permissiveness(view: ColumnView) -> tuple[int, int]:
    preference = -_MASK_PREFERENCE.index(view.mask_rule) if view.mask_rule else 0
    return MODE_RANK[view.mode], preference


def _combine(views: Iterable[ColumnView]) -> ColumnView:
    """Across roles the most permissive view wins."""
    return max(views, key=_permissiveness, default=HIDDEN)


def _least(views: Iterable[ColumnView]) -> ColumnView:
    return min(views, key=_permissiveness, default=HIDDEN)


def _column_views(grants: tuple[_Grant, ...], table: Resource, names: Iterable[str]) -> dict[str, ColumnView]:
    """Each named column's view. Per role: the lesser of the view from exactly matching rules and the
    view once restrictions that may be the same column (other spelling) join in; so a loose match can
    only lower what the exact rules give, never raise it. Across roles the most permissive wins."""
    broad_roles: set[int] = set()
    exact: dict[int, dict[str, list[_Grant]]] = {}   # rules on exactly this column name
    loose: dict[int, dict[str, list[_Grant]]] = {}   # restrictions that may be it, keyed casefolded
    for g in grants:
        if g.action != Action.VIEW:
            continue
        if not g.column:
            if g.contains(table):
                broad_roles.add(g.role_id)
            continue
        if g.inside(table):
            exact.setdefault(g.role_id, {}).setdefault(g.column, []).append(g)
        if g.restricts and g.may_be_inside(table):
            loose.setdefault(g.role_id, {}).setdefault(g.column.casefold(), []).append(g)
    roles = broad_roles | set(exact) | set(loose)

    def role_view(role: int, name: str) -> ColumnView:
        broad = role in broad_roles
        exact_rules = exact.get(role, {}).get(name, [])
        loose_rules = loose.get(role, {}).get(name.casefold(), [])
        view = _role_mode(broad, exact_rules)
        if not loose_rules:
            return view
        widening = [g for g in exact_rules if not g.restricts]  # clear rules still count, but only exact ones
        return _least((view, _role_mode(broad, widening + loose_rules)))

    return {name: _combine(role_view(role, name) for role in roles) for name in names}


def column_modes(user: Any, connection_id: int, schema: str | None, table: str,
                 column_names: Iterable[str]) -> dict[str, ColumnView]:
    """How each named column of a table is shown to ``user``: (mode, mask rule or None)."""
    table_resource = Resource(connection_id, schema, table)
    names = list(column_names)
    if not _is_member(user):
        return dict.fromkeys(names, HIDDEN)
    if user.is_superuser:
        return dict.fromkeys(names, VISIBLE)
    return _column_views(_grants(user), table_resource, names)


def column_mode(user: Any, resource: Resource) -> ColumnView:
    """How one column is shown to ``user``."""
    if resource.column is None:
        raise ValueError("column_mode needs a column resource")
    return column_modes(user, resource.connection_id, resource.schema, resource.table,
                        [resource.column])[resource.column]


def _writes_column(grants: tuple[_Grant, ...], action: Action, resource: Resource) -> bool:
    if any(g.action == action and g.column and g.contains(resource) for g in grants):
        return True  # the admin named this column for this action
    if not any(g.action == action and not g.column and g.contains(resource) for g in grants):
        return False
    # A table-wide write grant does not reach a column a column rule keeps from
    # the user (masked, or hidden while they may view the table): overwriting
    # sensitive data blind is as much a leak of control as reading it.
    mode = _column_views(grants, resource.table_resource(), [resource.column])[resource.column].mode
    if mode == ColumnMode.VISIBLE:
        return True
    if mode == ColumnMode.MASKED:
        return False
    # Blind writes to a hidden column only for users who cannot view its table at all; any view
    # grant that might be on this table (other spelling) counts, to fail closed.
    table = resource.table_resource()
    return not any(g.action == Action.VIEW and not g.hides
                   and (g.contains(table) or g.inside(table) or g.may_contain(table) or g.may_be_inside(table))
                   for g in grants)


def can_write_column(user: Any, action: Action | str, resource: Resource) -> bool:
    """May ``user`` set this column with ``action`` (insert or update)?"""
    action = Action(action)
    if action not in WRITE_COLUMN_ACTIONS:
        raise ValueError("can_write_column answers for insert and update only")
    if resource.column is None:
        raise ValueError("can_write_column needs a column resource")
    if not _is_member(user):
        return False
    if user.is_superuser:
        return True
    return _writes_column(_grants(user), action, resource)


def allowed_actions(user: Any, resource: Resource | None = None) -> frozenset[Action]:
    """Every action ``user`` may do on ``resource``: which buttons a page shows (cosmetic only)."""
    return frozenset(a for a in Action if check(user, a, resource))


@dataclass(frozen=True)
class TableAccess:
    """Everything a table page needs to know, computed from one load of the grants."""

    actions: frozenset[Action]
    columns: dict[str, ColumnView]
    insertable: frozenset[str]
    updatable: frozenset[str]


def table_access(user: Any, connection_id: int, schema: str | None, table: str,
                 column_names: Iterable[str]) -> TableAccess:
    """Effective permissions on one table and its columns (at most one query, whatever the column count)."""
    names = list(column_names)
    table_resource = Resource(connection_id, schema, table)

    def writable(action: Action) -> frozenset[str]:
        return frozenset(n for n in names
                         if can_write_column(user, action, Resource(connection_id, schema, table, n)))

    return TableAccess(
        actions=frozenset(a for a in Action if a not in GLOBAL_ACTIONS and check(user, a, table_resource)),
        columns=column_modes(user, connection_id, schema, table, names),
        insertable=writable(Action.INSERT),
        updatable=writable(Action.UPDATE),
    )


def _has_global_data_grant(grants: tuple[_Grant, ...]) -> bool:
    return any(g.connection_id is None and g.action not in GLOBAL_ACTIONS for g in grants)


def visible_connection_ids(user: Any) -> frozenset[int]:
    """Connections the user holds any data grant in (a pure 'hidden' column rule does not count)."""
    if not _is_member(user):
        return frozenset()
    if user.is_superuser or _has_global_data_grant(_grants(user)):
        return frozenset(Connection.objects.values_list("pk", flat=True))
    return frozenset(g.connection_id for g in _grants(user)
                     if g.connection_id is not None and g.action not in GLOBAL_ACTIONS and not g.hides)


def visible_connections(user: Any) -> QuerySet[Connection]:
    """The connections to list for ``user``."""
    if not _is_member(user):
        return Connection.objects.none()
    if user.is_superuser or _has_global_data_grant(_grants(user)):
        return Connection.objects.all()
    return Connection.objects.filter(pk__in=visible_connection_ids(user))


def visible_tables(user: Any, connection_id: int, schema: str | None, table_names: Iterable[str]) -> list[str]:
    """The names among ``table_names`` (in their order) the user holds any data grant on or in."""
    names = list(table_names)
    if not _is_member(user):
        return []
    if user.is_superuser:
        return names
    grants = [g for g in _grants(user) if g.action not in GLOBAL_ACTIONS and not g.hides
              and g.connection_id in (None, connection_id)]
    return [name for name in names
            if any(g.contains(Resource(connection_id, schema, name)) or g.inside(Resource(connection_id, schema, name))
                   for g in grants)]


def holds_in_connection(user: Any, action: Action | str, connection_id: int) -> bool:
    """Whether ``user`` holds ``action`` on ``connection_id`` or on anything inside it (a schema, a table)."""
    action = Action(action)
    if not _is_member(user):
        return False
    if user.is_superuser:
        return True
    return any(g.action == action and g.connection_id in (None, connection_id) for g in _grants(user))
