"""Roles and grants: the built-in roles, and the audited services that change access.

Every change of who may do what goes through a function here: each checks that
the actor may manage access, validates, and writes exactly one audit event in
the same transaction ("who granted what to whom"). Pass the request from a
view; actor=None with request=None means the server's own command line.

Built-in roles: Admin (every action on every connection, plus manage and
audit_view) and Auditor (audit_view) have fixed grants. Editor and Viewer
start without grants: they are templates, given per connection with
grant_template(). Built-in roles cannot be renamed or deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.http import HttpRequest

from bastion.access.models import (
    ADMIN_ROLE,
    Action,
    ColumnMode,
    Grant,
    MaskRule,
    RoleOptions,
    TwoPersonOperation,
    audited_grant_write,
)
from bastion.access.policy import check, forget_grants
from bastion.audit.services import record
from bastion.connections.models import Connection

ADMIN = ADMIN_ROLE
AUDITOR = "Auditor"
EDITOR = "Editor"
VIEWER = "Viewer"
BUILTIN_ROLES = (ADMIN, AUDITOR, EDITOR, VIEWER)
FIXED_GRANT_ROLES = (ADMIN, AUDITOR)

DESCRIPTIONS = {
    ADMIN: "Everything on every connection; manages connections, users and roles; reads the audit log.",
    AUDITOR: "Reads the audit log, nothing else.",
    EDITOR: "Template: reads and changes rows, runs read queries, imports and exports on the connections "
            "it is given.",
    VIEWER: "Template: reads rows, runs read queries and exports on the connections it is given.",
}
# Roles whose members must enrol a second factor on a new installation (T16); an administrator may change it.
MFA_REQUIRED_ROLES = (ADMIN,)
# Admin's grants are global (connection empty): every action, on every connection.
FIXED_GRANTS = {ADMIN: tuple(Action), AUDITOR: (Action.AUDIT_VIEW,)}
TEMPLATES = {
    VIEWER: (Action.VIEW, Action.QUERY, Action.EXPORT),
    EDITOR: (Action.VIEW, Action.INSERT, Action.UPDATE, Action.DELETE, Action.QUERY, Action.EXPORT,
             Action.IMPORT),
}


def ensure_builtin_roles(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """post_migrate hook: the built-in roles and their fixed grants exist.

    Like the schema itself this is set-up, not an access change, so it writes
    no audit event; it never removes anything an administrator added.
    """
    for name in BUILTIN_ROLES:
        role, _ = Group.objects.using(using).get_or_create(name=name)
        RoleOptions.objects.using(using).get_or_create(
            role=role, defaults={"description": DESCRIPTIONS[name], "require_mfa": name in MFA_REQUIRED_ROLES})
        with audited_grant_write():  # set-up, see above
            for action in FIXED_GRANTS.get(name, ()):
                Grant.objects.using(using).get_or_create(role=role, action=action, connection=None,
                                                         schema="", table="", column="")


# --- authorisation and audit helpers --------------------------------------------


def _authorise(actor: Any, request: HttpRequest | None) -> Any:
    """The acting user, who must hold manage; None only for the command line (no request)."""
    if actor is None and request is not None:
        actor = request.user
    if actor is None:
        return None
    if not check(actor, Action.MANAGE):
        raise PermissionDenied
    return actor


def _role_details(role: Group) -> dict[str, Any]:
    return {"role": role.name, "role_id": role.pk}


def _grant_details(grant: Grant) -> dict[str, Any]:
    return {**_role_details(grant.role), "action": grant.action, "scope": grant.scope_details(),
            "column_mode": grant.column_mode, "mask_rule": grant.mask_rule}


def _refuse_fixed(role: Group) -> None:
    if role.name in FIXED_GRANT_ROLES:
        raise ValidationError(f"The grants of the built-in role {role.name} are fixed.")


# --- grants ----------------------------------------------------------------------


def build_grant(role: Group, action: Action | str, connection: Connection | None = None, schema: str = "",
                table: str = "", column: str = "", column_mode: ColumnMode | str = "",
                mask_rule: MaskRule | str = "", created_by: Any = None) -> Grant:
    """An unsaved, validated grant (raises ValidationError); the forms use it too."""
    _refuse_fixed(role)
    grant = Grant(role=role, action=action, connection=connection, schema=schema or "", table=table or "",
                  column=column or "", column_mode=column_mode or "", mask_rule=mask_rule or "",
                  created_by=created_by)
    grant.full_clean(exclude=["created_by"])
    return grant


def add_grant(actor: Any, request: HttpRequest | None, role: Group, action: Action | str,
              connection: Connection | None = None, schema: str = "", table: str = "", column: str = "",
              column_mode: ColumnMode | str = "", mask_rule: MaskRule | str = "") -> Grant:
    """Give ``role`` ``action`` on a scope. Audited as grant.added."""
    actor = _authorise(actor, request)
    grant = build_grant(role, action, connection, schema, table, column, column_mode, mask_rule, created_by=actor)
    with transaction.atomic(), audited_grant_write():
        grant.save()
        record("grant.added", request=request, actor=actor, target=role.name, details=_grant_details(grant))
    return grant


def remove_grant(actor: Any, request: HttpRequest | None, grant: Grant) -> None:
    """Take a grant away. Audited as grant.removed; effective from the members' next request."""
    actor = _authorise(actor, request)
    _refuse_fixed(grant.role)
    details = _grant_details(grant)
    with transaction.atomic(), audited_grant_write():
        grant.delete()
        record("grant.removed", request=request, actor=actor, target=details["role"], details=details)


def grant_template(actor: Any, request: HttpRequest | None, role: Group, connection: Connection,
                   template: str | None = None) -> list[Grant]:
    """Give ``role`` the Viewer or Editor set of actions on a whole connection (the role's own by default).

    Grants the role already has are kept; the new ones are audited together as
    one grant.template_applied event.
    """
    actor = _authorise(actor, request)
    name = template or role.name
    if name not in TEMPLATES:
        raise ValidationError(f"There is no grant template named {name}; use {' or '.join(TEMPLATES)}.")
    existing = set(Grant.objects.filter(role=role, connection=connection, schema="", table="", column="")
                   .values_list("action", flat=True))
    grants = [build_grant(role, action, connection, created_by=actor)
              for action in TEMPLATES[name] if action not in existing]
    with transaction.atomic(), audited_grant_write():
        for grant in grants:
            grant.save()
        record("grant.template_applied", request=request, actor=actor, target=role.name,
               details={**_role_details(role), "template": name, "actions": [g.action for g in grants],
                        "scope": {"connection_id": connection.pk, "connection": str(connection)}})
    return grants


# --- roles -----------------------------------------------------------------------


def clean_role_name(name: str, role: Group | None = None) -> str:
    """The stripped name, if no other role has it in any letter case (raises ValidationError)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A role needs a name."})
    if len(name) > Group._meta.get_field("name").max_length:
        raise ValidationError({"name": "This name is too long."})
    clash = Group.objects.filter(name__iexact=name)
    if role is not None:
        clash = clash.exclude(pk=role.pk)
    if clash.exists() or name.casefold() in {b.casefold() for b in BUILTIN_ROLES}:
        raise ValidationError({"name": "A role with this name already exists."})
    return name


def _refuse_builtin(role: Group, doing: str) -> None:
    if role.name in BUILTIN_ROLES:
        raise ValidationError(f"The built-in role {role.name} cannot be {doing}.")


def create_role(actor: Any, request: HttpRequest | None, name: str, description: str = "") -> Group:
    """A new role without grants (default deny). Audited as role.created."""
    actor = _authorise(actor, request)
    name = clean_role_name(name)
    with transaction.atomic():
        role = Group.objects.create(name=name)
        RoleOptions.objects.create(role=role, description=description.strip())
        record("role.created", request=request, actor=actor, target=name,
               details=_role_details(role), after={"name": name, "description": description.strip()})
    return role


def update_role(actor: Any, request: HttpRequest | None, role: Group, name: str, description: str = "") -> Group:
    """Rename a role or change its description. Audited as role.updated (before and after)."""
    actor = _authorise(actor, request)
    name = name.strip()
    if name != role.name:
        _refuse_builtin(role, "renamed")
        name = clean_role_name(name, role)
    with transaction.atomic():
        options, _ = RoleOptions.objects.get_or_create(role=role)
        before = {"name": role.name, "description": options.description}
        role.name = name
        role.save(update_fields=["name"])
        options.description = description.strip()
        options.save(update_fields=["description"])
        record("role.updated", request=request, actor=actor, target=name, details=_role_details(role),
               before=before, after={"name": name, "description": options.description})
    return role


def set_two_person_rule(actor: Any, request: HttpRequest | None, role: Group, operations: Iterable[str]) -> Group:
    """Which schema changes members of ``role`` must have approved by a second person (the others: none).

    Audited as role.two_person_rule_updated with the operations before and after.
    """
    actor = _authorise(actor, request)
    wanted = set(operations)
    unknown = wanted - set(TwoPersonOperation.values)
    if unknown:
        raise ValidationError(f"Unknown operation: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        options, _ = RoleOptions.objects.select_for_update().get_or_create(role=role)
        before = options.two_person_operations()
        for operation, field in RoleOptions.TWO_PERSON_FIELDS.items():
            setattr(options, field, operation in wanted)
        options.save(update_fields=list(RoleOptions.TWO_PERSON_FIELDS.values()))
        record("role.two_person_rule_updated", request=request, actor=actor, target=role.name,
               details=_role_details(role), before={"two_person": before},
               after={"two_person": options.two_person_operations()})
    return role


def set_mfa_requirement(actor: Any, request: HttpRequest | None, role: Group, required: bool) -> Group:
    """Whether members of ``role`` must enrol a second factor before they reach anything (T16).

    Audited as role.mfa_requirement_updated with the value before and after.
    """
    actor = _authorise(actor, request)
    with transaction.atomic():
        options, _ = RoleOptions.objects.select_for_update().get_or_create(role=role)
        before = options.require_mfa
        options.require_mfa = required
        options.save(update_fields=["require_mfa"])
        record("role.mfa_requirement_updated", request=request, actor=actor, target=role.name,
               details=_role_details(role), before={"require_mfa": before}, after={"require_mfa": required})
    return role


def delete_role(actor: Any, request: HttpRequest | None, role: Group) -> None:
    """Delete a role with its grants; its members lose them. Audited as role.deleted."""
    actor = _authorise(actor, request)
    _refuse_builtin(role, "deleted")
    details = {**_role_details(role),
               "members": sorted(role.user_set.values_list("username", flat=True)),
               "grants": [str(g) for g in role.grants.select_related("connection")]}
    with transaction.atomic(), audited_grant_write():
        role.delete()
        record("role.deleted", request=request, actor=actor, target=details["role"], details=details)


# --- membership ------------------------------------------------------------------


def _last_admin(role: Group, user: Any) -> bool:
    if role.name != ADMIN or not user.is_active:
        return False
    users = get_user_model().objects.filter(is_active=True).exclude(pk=user.pk)
    return not (users.filter(groups=role).exists() or users.filter(is_superuser=True).exists())


def add_member(actor: Any, request: HttpRequest | None, role: Group, user: Any) -> None:
    """Put ``user`` in ``role``. Audited as role.member_added."""
    actor = _authorise(actor, request)
    if user.groups.filter(pk=role.pk).exists():
        raise ValidationError(f"{user.get_username()} is already a member of {role.name}.")
    with transaction.atomic():
        user.groups.add(role)
        record("role.member_added", request=request, actor=actor, target=user.get_username(),
               details={**_role_details(role), "user": user.get_username(), "user_id": user.pk})
    forget_grants(user)


def remove_member(actor: Any, request: HttpRequest | None, role: Group, user: Any) -> None:
    """Take ``user`` out of ``role``. Audited as role.member_removed; the last active admin stays."""
    actor = _authorise(actor, request)
    if not user.groups.filter(pk=role.pk).exists():
        raise ValidationError(f"{user.get_username()} is not a member of {role.name}.")
    if _last_admin(role, user):
        raise ValidationError("This is the last active administrator: give another user the Admin role first.")
    with transaction.atomic():
        user.groups.remove(role)
        record("role.member_removed", request=request, actor=actor, target=user.get_username(),
               details={**_role_details(role), "user": user.get_username(), "user_id": user.pk})
    forget_grants(user)

