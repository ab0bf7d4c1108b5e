"""A table export run as a background job (issue 8): the file kept for download, the same content as the
streamed export, hidden columns left out and masked ones masked (T31), audited (T33), re-authentication
above the limit (T36), and a cancel that keeps no file."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.audit.models import AuditEvent, Outcome
from bastion.jobs.models import Job, JobStatus
from bastion.jobs.runners import JobCancelled, Progress
from bastion.jobs.services import job_path
from bastion.jobs.worker import run_pending
from bastion.transfer import export, export_job
from tests.engines import target  # noqa: F401
from tests.test_transfer_export import body, export_url, exporter, people

pytestmark = pytest.mark.django_db


def queue(client: Any, url: str, fmt: str = "csv") -> Job:
    response = client.post(url, {"format": fmt, "run": "job"})
    assert response.status_code == 302, response.content[:2000]
    return Job.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[-1])


def test_T31_T33_a_job_writes_what_the_streamed_export_writes_and_keeps_it_for_download(client, target):  # noqa: F811
    people(target)
    client.force_login(exporter(target))
    url = export_url(target, q="")
    streamed = body(client.post(url, {"format": "jsonl"}))
    job = queue(client, url, "jsonl")
    assert job.status == JobStatus.QUEUED and job.params["download_name"].endswith(".jsonl")
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.rows_done == 3 and job.expires_at is not None
    assert job_path(job).read_text() == streamed
    assert "s1" not in streamed and "4111111111111111" not in streamed  # hidden left out, masked masked
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode() == streamed
    response.close()
    events = AuditEvent.objects.filter(action__in=[export_job.SUBMITTED, export.EXPORTED]).order_by("seq")
    submitted, written = [e for e in events if e.details.get("job") == str(job.pk)]
    assert submitted.action == export_job.SUBMITTED and written.action == export.EXPORTED
    assert written.outcome == Outcome.SUCCESS and written.details["rows"] == 3
    assert written.actor_id == job.owner_id


def test_T36_a_large_export_job_asks_for_the_password_first(client, target, settings):  # noqa: F811
    people(target)
    settings.EXPORT_REAUTH_ROWS = 2
    client.force_login(exporter(target))
    response = client.post(export_url(target), {"format": "csv", "run": "job"})
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    assert not Job.objects.exists()


def test_a_cancelled_export_job_keeps_no_file(client, target):  # noqa: F811
    people(target)
    client.force_login(exporter(target))
    job = queue(client, export_url(target))

    class StopAtOnce(Progress):
        def should_stop(self) -> bool:
            return True

    with pytest.raises(JobCancelled):
        export_job.run(job, StopAtOnce(job))
    event = AuditEvent.objects.get(action=export.EXPORTED)
    assert event.outcome == Outcome.FAILURE and event.details["message"] == "cancelled"


def test_T20_the_runner_checks_the_grant_again(client, target):  # noqa: F811
    people(target)
    user = exporter(target)
    client.force_login(user)
    job = queue(client, export_url(target))
    user.groups.clear()
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "no longer" in job.message
    assert not job.file_name


def test_T31_a_column_masked_since_the_file_was_written_stops_its_download(client, target):  # noqa: F811
    from bastion.access.models import Action, ColumnMode, MaskRule
    from bastion.access.roles import add_grant

    people(target)
    user = exporter(target)
    client.force_login(user)
    job = queue(client, export_url(target))
    run_pending()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.params["written_modes"]["name"][0] == "visible"
    add_grant(None, None, user.groups.get(), Action.VIEW, target.connection, target.schema or "", "people", "name",
              ColumnMode.MASKED, MaskRule.FIXED)
    response = client.post(f"/jobs/{job.pk}/download/")
    assert response.status_code == 403 and "has changed" in response.content.decode()
