"""What the console keeps per user: the draft in the editor, the statements run, and saved queries."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from bastion.connections.models import Connection


class Draft(models.Model):
    """The editor's text for one user and connection, so it survives logout, expiry and restarts."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "connection"], name="console_draft_one_per_user")]

    def __str__(self) -> str:
        return f"draft of {self.user_id} on {self.connection_id}"


class HistoryEntry(models.Model):
    """One run of the console, visible to its user only (auditors read the audit log)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    ran_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=16)
    rows = models.BigIntegerField(null=True)
    elapsed_ms = models.FloatField(default=0)

    class Meta:
        indexes = [models.Index(fields=["user", "connection", "-ran_at"], name="console_history_recent")]
        ordering = ["-ran_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.user_id} on {self.connection_id}"


class SavedQuery(models.Model):
    """A named query, private to its owner or shared with the members of one role."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    text = models.TextField()
    shared_with = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "connection", "name"],
                                               name="console_saved_name_per_owner")]
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name
