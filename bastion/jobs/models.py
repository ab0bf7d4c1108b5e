"""One background job (an import or an export): its state, progress and outcome.

The row is the single source of truth that every process reads: the web pages show it, the worker that runs
the job writes it (progress at most about twice a second, through runners.Progress). The task queue
(django-tasks) only carries the job's id, so its backend can change without touching this table.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobKind(models.TextChoices):
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """``params`` belong to the job's runner; ``error`` is {"row": int, "column": str, "reason": str} or {}.

    ``file_name`` names a file in the data directory's jobs folder (services.job_path): an import's upload,
    deleted when the job ends, or an export's result, kept until ``expires_at``. ``schema`` is "" for the
    connection's default schema. ``heartbeat_at`` is refreshed while a worker runs the job, so a job whose
    worker died can be told from a slow one (services.mark_interrupted).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    connection = models.ForeignKey("connections.Connection", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    schema = models.CharField(max_length=255, blank=True)
    table = models.CharField(max_length=255, blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(null=True, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    error = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    file_name = models.CharField(max_length=64, blank=True)
    file_size = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        default_permissions = ()
        indexes = [
            models.Index(fields=["owner", "status"], name="job_owner_status"),
            models.Index(fields=["owner", "-created_at"], name="job_owner_newest"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            models.Index(fields=["expires_at"], name="job_expires"),
        ]
        constraints = [
            # One job per file: an upload is imported once, even when "Start" is pressed twice at once.
            models.UniqueConstraint(fields=["file_name"], condition=~models.Q(file_name=""), name="job_file_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def kind_label(self) -> str:
        return JobKind(self.kind).label if self.kind in JobKind.values else self.kind

    @property
    def table_label(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def file_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())
