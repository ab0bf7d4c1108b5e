from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KT


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    DENIED = "denied", "Denied"


class AuditEvent(models.Model):
    """One thing that happened. Written once by bastion.audit.services.record, never changed.

    ``seq`` numbers events without gaps and ``hash`` is an HMAC over the event
    and the previous event's hash, so an edited, deleted or inserted row breaks
    the chain at that point (bastion.audit.chain.verify_chain).
    """

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=150, blank=True, db_index=True)
    ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    auth_method = models.CharField(max_length=32, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=500, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    request_id = models.CharField(max_length=32, blank=True)
    details = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-seq"]
        # Only reading is a permission: there is no way to change or delete an event.
        default_permissions = ("view",)
        indexes = [
            # Row history (bastion.explorer.history) looks events up by the table they changed
            # (used by PostgreSQL, the metadata database of larger installations).
            models.Index(KT("details__table"), name="audit_event_details_table"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor or 'anonymous'}"
