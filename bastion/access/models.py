"""Roles are Django groups; a Grant gives a role one action on one scope.

Scope fields left empty mean "all": a grant on a connection with no schema,
table or column covers everything inside that connection. Grants are created
and removed only through bastion.access.roles (audited); nothing else writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

ADMIN_ROLE = "Admin"  # the one role that may hold data grants on every connection


class Action(models.TextChoices):
    VIEW = "view", "View rows"
    INSERT = "insert", "Insert rows"
    UPDATE = "update", "Update rows"
    DELETE = "delete", "Delete rows"
    ALTER = "alter", "Change the schema"
    DROP = "drop", "Drop tables"
    QUERY = "query", "SQL console (read)"
    QUERY_WRITE = "query_write", "SQL console (write)"
    EXPORT = "export", "Export"
    IMPORT = "import", "Import"
    AUDIT_VIEW = "audit_view", "Read the audit log"
    MANAGE = "manage", "Manage connections, users and roles"


# Not about any database: held globally, never on a connection.
GLOBAL_ACTIONS = frozenset({Action.AUDIT_VIEW, Action.MANAGE})
# The only actions a grant may scope to a single column (read and write separately).
COLUMN_ACTIONS = frozenset({Action.VIEW, Action.INSERT, Action.UPDATE})


class ColumnMode(models.TextChoices):
    HIDDEN = "hidden", "Hidden"
    MASKED = "masked", "Masked"
    VISIBLE = "visible", "Visible"


# Most permissive last: across roles the highest rank wins.
MODE_RANK = {ColumnMode.HIDDEN: 0, ColumnMode.MASKED: 1, ColumnMode.VISIBLE: 2}


class MaskRule(models.TextChoices):
    LAST4 = "last4", "Last four characters (****1234)"
    EMAIL_DOMAIN = "email_domain", "E-mail domain only (***@example.com)"
    FIXED = "fixed", "Fixed (****)"


_audited_write: ContextVar[bool] = ContextVar("bastion_grant_write", default=False)


class GrantWriteRefused(RuntimeError):
    """A grant was about to change outside bastion.access.roles, i.e. without an audit event."""


@contextmanager
def audited_grant_write() -> Iterator[None]:
    """Opened only by the services in bastion.access.roles, around the change and its audit event."""
    token = _audited_write.set(True)
    try:
        yield
    finally:
        _audited_write.reset(token)


def _refuse_unaudited() -> None:
    if not _audited_write.get():
        raise GrantWriteRefused("grants change only through bastion.access.roles, which audits every change")


class GrantQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        _refuse_unaudited()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse_unaudited()
        return super().delete()

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[Grant]:
        _refuse_unaudited()
        return super().bulk_create(*args, **kwargs)

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        _refuse_unaudited()
        return super().bulk_update(*args, **kwargs)


class Grant(models.Model):
    """One action for one role on one scope: every connection, a connection, schema, table or column.

    Saving or deleting one outside audited_grant_write() raises GrantWriteRefused.
    (Deleting its role or connection removes it by cascade: the service that
    deletes those audits the removal.)
    """

    role = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="grants")
    action = models.CharField(max_length=16, choices=Action.choices)
    connection = models.ForeignKey("connections.Connection", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="grants", help_text="Empty: every connection.")
    schema = models.CharField(max_length=255, blank=True, help_text="Empty: every schema.")
    table = models.CharField(max_length=255, blank=True, help_text="Empty: every table.")
    column = models.CharField(max_length=255, blank=True, help_text="Empty: every column.")
    column_mode = models.CharField(max_length=8, choices=ColumnMode.choices, blank=True)
    mask_rule = models.CharField(max_length=16, choices=MaskRule.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["role__name", "action", "connection__name", "schema", "table", "column"]
        # Nothing but the audited services may change grants: no Django permissions for them.
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["role", "action", "connection", "schema", "table", "column"],
                                    name="access_grant_unique_scope"),
            # SQL treats NULLs as distinct, so global grants need their own constraint.
            models.UniqueConstraint(fields=["role", "action", "schema", "table", "column"],
                                    condition=Q(connection__isnull=True),
                                    name="access_grant_unique_global_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.role.name}: {self.action} on {self.scope_label()}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        _refuse_unaudited()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _refuse_unaudited()
        return super().delete(*args, **kwargs)

    def scope_label(self) -> str:
        if self.connection_id is None:
            return "everything"
        parts = [str(self.connection), self.schema or "*", self.table or "*", self.column or "*"]
        while len(parts) > 1 and parts[-1] == "*":
            parts.pop()
        return ".".join(parts)

    def scope_details(self) -> dict[str, object]:
        """The scope as plain data, for audit events."""
        return {
            "connection_id": self.connection_id,
            "connection": str(self.connection) if self.connection_id else None,
            "schema": self.schema, "table": self.table, "column": self.column,
        }

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for name in ("schema", "table", "column"):
            value = getattr(self, name)
            if value != value.strip() or "\x00" in value:
                errors[name] = "Names may not start or end with spaces or contain NUL characters."
        if self.column and not self.table:
            errors["column"] = "A column grant needs its table."
        if (self.schema or self.table) and self.connection_id is None:
            errors["connection"] = "A schema or table grant needs its connection."
        if self.action in GLOBAL_ACTIONS:
            if self.connection_id is not None or self.schema or self.table or self.column:
                errors["action"] = "This action is global: grant it without a connection, schema, table or column."
        elif self.connection_id is None and not errors and self.role_id is not None \
                and self.role.name != ADMIN_ROLE:
            errors["connection"] = "Choose a connection: only the Admin role holds data grants on every connection."
        if self.column and self.action not in COLUMN_ACTIONS:
            errors["column"] = "Only view, insert and update can be granted on a single column."
        errors.update(self._column_mode_errors())
        if errors:
            raise ValidationError(errors)

    def _column_mode_errors(self) -> dict[str, str]:
        column_view = bool(self.column) and self.action == Action.VIEW
        if not column_view:
            errors = {}
            if self.column_mode:
                errors["column_mode"] = "A column mode belongs to a view grant on a single column."
            if self.mask_rule:
                errors["mask_rule"] = "A masking rule belongs to a view grant on a single column."
            return errors
        if not self.column_mode:
            return {"column_mode": "Choose how this column is shown: hidden, masked or visible."}
        if self.column_mode == ColumnMode.MASKED and not self.mask_rule:
            return {"mask_rule": "Choose a masking rule for a masked column."}
        if self.column_mode != ColumnMode.MASKED and self.mask_rule:
            return {"mask_rule": "A masking rule applies only to masked columns."}
        return {}


class TwoPersonOperation(models.TextChoices):
    """Schema changes a role can make wait for a second person's approval (bastion.schema_editor.approvals)."""

    DROP = "drop", "Dropping a table or view"
    EMPTY = "empty", "Emptying a table (truncate)"
    DROP_COLUMN = "drop_column", "Dropping a column"


class RoleOptions(models.Model):
    """What a role is for, in the admin's words, and its two-person rule. One row per role (Django group).

    The ``two_person_*`` flags are changed only through bastion.access.roles.set_two_person_rule
    (audited). A user needs a second person's approval for an operation when any of their roles
    has its flag set.
    """

    role = models.OneToOneField(Group, on_delete=models.CASCADE, primary_key=True, related_name="options")
    description = models.CharField(max_length=500, blank=True)
    two_person_drop = models.BooleanField(default=False)
    two_person_empty = models.BooleanField(default=False)
    two_person_drop_column = models.BooleanField(default=False)
    # Members must enrol a second factor before they reach anything (T16); changed only through
    # bastion.access.roles.set_mfa_requirement (audited).
    require_mfa = models.BooleanField(default=False)

    TWO_PERSON_FIELDS = {
        TwoPersonOperation.DROP: "two_person_drop",
        TwoPersonOperation.EMPTY: "two_person_empty",
        TwoPersonOperation.DROP_COLUMN: "two_person_drop_column",
    }

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"options of {self.role.name}"

    def two_person_operations(self) -> list[str]:
        """The operations this role makes wait for approval, in TwoPersonOperation's order."""
        return [str(op) for op, name in self.TWO_PERSON_FIELDS.items() if getattr(self, name)]
