"""Built-in roles. The access app (grants down to the column) builds on these groups."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

ADMIN = "Admin"
AUDITOR = "Auditor"

ROLE_PERMISSIONS = {
    ADMIN: ["audit.view_auditevent"],
    AUDITOR: ["audit.view_auditevent"],
}


def ensure_builtin_roles(**kwargs: Any) -> None:
    """post_migrate hook: the built-in groups exist and hold their permissions."""
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename).first()
            if permission is not None:
                group.permissions.add(permission)
