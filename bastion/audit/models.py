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


class TableSnapshot(models.Model):
    """What restores a dropped table: the statements that recreate it and, when it was small enough, its rows.

    Written once, with the drop's audit event (bastion.schema_editor.snapshots.store), never changed.
    The event's details hold ``definition_sha256`` and ``sha256`` of what is kept here, so the hash chain
    covers the snapshot too: a restore checks both before it uses anything (T34). ``data`` holds every
    column's values, hidden ones included (T31): no page ever shows it, only its size and row count.
    """

    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="snapshot")
    dialect = models.CharField(max_length=16)
    create_sql = models.TextField()
    index_sql = models.JSONField(default=list)  # run after CREATE TABLE, before the rows
    finish_sql = models.JSONField(default=list)  # run after the rows
    columns = models.JSONField(default=list)  # the columns whose values are kept, in the order of each row
    rows_kept = models.BooleanField(default=False)
    reason = models.CharField(max_length=200, blank=True)  # why the rows were not kept
    row_count = models.BigIntegerField(null=True, blank=True)
    json_bytes = models.BigIntegerField(default=0)  # size of the rows as JSON, before compression
    data = models.BinaryField(null=True, blank=True)  # the rows: JSON, zlib-compressed
    sha256 = models.CharField(max_length=64, blank=True)  # of ``data``
    definition_sha256 = models.CharField(max_length=64)

    class Meta:
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"snapshot of event #{self.event_id}"
