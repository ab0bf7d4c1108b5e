"""Requests for a second person's approval of a schema change (the two-person rule, T37).

Rows are written only by bastion.schema_editor.approvals, which audits every change of state.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from bastion.access.models import TwoPersonOperation


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved, running"  # claimed by an approver; executed or failed follows
    EXECUTED = "executed", "Approved and done"
    FAILED = "failed", "Approved, not done"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


class ApprovalRequest(models.Model):
    """One schema change a user asked for, waiting for (or decided by) another person.

    ``statements`` are exactly what the requester was shown; ``fingerprint`` is the table's
    definition at request time (approvals.fingerprint): an approval runs only while both still hold.
    A pending request past ``expires_at`` is expired (see ``effective_status``) even before a POST
    writes that down.
    """

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey("connections.Connection", on_delete=models.CASCADE, related_name="+")
    schema = models.CharField(max_length=255, blank=True, help_text="Empty: the connection's default schema.")
    table = models.CharField(max_length=255)
    operation = models.CharField(max_length=16, choices=TwoPersonOperation.choices)
    column = models.CharField(max_length=255, blank=True, help_text="For dropping a column.")
    statements = models.JSONField(default=list)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="What happened: the result, the error or the reason given.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        default_permissions = ()
        indexes = [models.Index(fields=["status", "expires_at"], name="approval_open")]

    def __str__(self) -> str:
        return f"approval #{self.pk}: {self.operation} {self.table_label} ({self.status})"

    @property
    def table_label(self) -> str:
        name = f"{self.schema}.{self.table}" if self.schema else self.table
        return f"{name}.{self.column}" if self.column else name

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.status == ApprovalStatus.PENDING and self.expires_at <= (now or timezone.now())

    @property
    def effective_status(self) -> str:
        """The status as it stands now: a pending request past its time is expired."""
        return ApprovalStatus.EXPIRED if self.is_expired() else self.status

    @property
    def effective_status_label(self) -> str:
        return ApprovalStatus(self.effective_status).label
