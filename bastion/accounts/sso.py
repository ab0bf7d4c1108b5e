"""Single sign-on policy: which roles an identity provider's claim gives, and who may still use a password.

The provider itself is allauth's ``openid_connect`` (configured in settings from BASTION_OIDC_*);
bastion.accounts.sso_adapter hooks this policy into allauth's social login.
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import HttpRequest

from bastion.access.models import Action
from bastion.access.policy import check, forget_grants
from bastion.access.roles import ADMIN
from bastion.audit.services import record
from bastion.logs import get_logger

log = get_logger("bastion.accounts")

AUTH_METHOD = "oidc"


def enabled() -> bool:
    return bool(settings.OIDC_ENABLED)


def sso_only() -> bool:
    return enabled() and bool(settings.OIDC_SSO_ONLY)


def password_allowed(user: Any) -> bool:
    """In SSO-only mode passwords work for administrators alone: holders of manage (superusers included).

    They keep a way in when the identity provider is down or misconfigured.
    """
    return not sso_only() or check(user, Action.MANAGE)


def password_allowed_once_active(user: Any) -> bool:
    """password_allowed for an account an e-mailed link is about to activate, judged by the roles it holds.

    Permission checks refuse inactive accounts, so the question is put to an active copy.
    """
    active = copy.copy(user)
    active.is_active = True
    return password_allowed(active)


def claims(extra_data: dict[str, Any]) -> dict[str, Any]:
    """The identity provider's claims about the user: the ID token's, overridden by the userinfo answer.

    Some providers put the group claim only in the ID token, others only in userinfo; allauth keeps both.
    """
    return {**(extra_data.get("id_token") or {}), **(extra_data.get("userinfo") or {})}


def mapped_roles(user_claims: dict[str, Any]) -> set[str]:
    """The Bastion roles the configured claim grants through BASTION_OIDC_ROLE_MAP."""
    values = user_claims.get(settings.OIDC_ROLE_CLAIM) or []
    if isinstance(values, str):
        values = [values]
    role_map = settings.OIDC_ROLE_MAP
    return {role_map[value] for value in values if isinstance(value, str) and value in role_map}


def _other_active_admin(user: Any) -> bool:
    from django.contrib.auth import get_user_model

    others = get_user_model().objects.filter(is_active=True).exclude(pk=user.pk)
    return others.filter(groups__name=ADMIN).exists() or others.filter(is_superuser=True).exists()


def apply_roles(request: HttpRequest | None, user: Any, user_claims: dict[str, Any]) -> None:
    """Make the user's mapped roles what the claim says; roles outside the map are left alone.

    One audit event (role.sso_synced) when anything changed. The last active administrator keeps Admin,
    as everywhere else in Bastion (bastion.access.roles.remove_member).
    """
    managed = set(settings.OIDC_ROLE_MAP.values())
    if not managed:
        return
    wanted = mapped_roles(user_claims)
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    remove = current - wanted
    kept = {ADMIN} if ADMIN in remove and not _other_active_admin(user) else set()
    remove -= kept
    roles = {g.name: g for g in Group.objects.filter(name__in=(wanted - current) | remove)}
    add = {name for name in wanted - current if name in roles}
    missing = wanted - current - add
    if missing:
        log.warning("sso_role_missing", roles=sorted(missing), username=user.get_username())
    if not add and not remove:
        return
    with transaction.atomic():
        user.groups.add(*(roles[name] for name in add))
        user.groups.remove(*(roles[name] for name in remove))
        record("role.sso_synced", request=request, actor=user, target=user.get_username(),
               before={"roles": sorted(current)}, after={"roles": sorted((current | add) - remove)},
               details={"claim": settings.OIDC_ROLE_CLAIM, "added": sorted(add), "removed": sorted(remove),
                        "kept": sorted(kept)},
               auth_method=AUTH_METHOD)
    forget_grants(user)
