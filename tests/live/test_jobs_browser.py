"""A job's page in a real browser against a real server: the progress bar and figures follow the job without
a reload (static/bastion/jobs.js polls /status/), polling stops at the final state, and without JavaScript
a Refresh link does the same; zero CSP violations (T05).

The test plays the worker's part by writing the job's progress itself (no runner of its own is registered:
nothing test-only is reachable in the server)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import LiveBastion
from tests.live.test_browser_e2e import NEW_PASSWORD, sign_in, snap
from tests.live.test_jobs_live import django

pytestmark = [pytest.mark.live, pytest.mark.browser]

USER = "jobs-browser"


@pytest.fixture(scope="module")
def jobs_user(live_bastion: LiveBastion) -> str:
    live_bastion.create_admin(USER, NEW_PASSWORD)
    return USER


def create_running_import(live: LiveBastion) -> str:
    return django(live, "from datetime import timedelta\n"
                        "from django.contrib.auth import get_user_model\n"
                        "from django.utils import timezone\n"
                        "from bastion.jobs.models import Job\n"
                        f"owner = get_user_model().objects.get(username={USER!r})\n"
                        "now = timezone.now()\n"
                        "job = Job.objects.create(owner=owner, kind='import', status='running', table='orders',\n"
                        "    started_at=now - timedelta(seconds=5), heartbeat_at=now, rows_done=50,\n"
                        "    bytes_done=100, bytes_total=1000, params={'original_name': 'orders.csv'})\n"
                        "print(job.pk)")


def update_job(live: LiveBastion, job_id: str, **fields: object) -> None:
    django(live, "from django.utils import timezone\n"
                 "from bastion.jobs.models import Job\n"
                 f"fields = {fields!r}\n"
                 "now = timezone.now()\n"
                 "if fields.get('status') in ('succeeded', 'failed', 'cancelled'):\n"
                 "    fields['finished_at'] = now\n"
                 f"Job.objects.filter(pk={job_id!r}).update(heartbeat_at=now, **fields)")


def test_the_progress_page_follows_the_job_without_reloading(live_bastion: LiveBastion, jobs_user: str,
                                                             new_page) -> None:
    job_id = create_running_import(live_bastion)
    page: Page = new_page()
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, USER, NEW_PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.locator(f"#job-{job_id} .badge")).to_have_text("Running")
    snap(page, "jobs-list")
    page.locator(f"#job-{job_id}").get_by_role("link", name="Import").click()

    expect(page.locator("#job-percent")).to_have_text("10%")
    expect(page.locator("#job-summary")).to_contain_text("50 rows done")
    page.evaluate("window.bastionNotReloaded = true")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/status/" in request.url else None)

    update_job(live_bastion, job_id, rows_done=3000, bytes_done=600)
    expect(page.locator("#job-percent")).to_have_text("60%")
    expect(page.locator("#job-bar")).to_have_attribute("value", "60.0")  # as the server would write it
    expect(page.locator("#job-summary")).to_contain_text("3,000 rows done")
    expect(page.locator("#job-summary")).to_contain_text("rows/s")
    expect(page.get_by_role("button", name="Cancel import")).to_be_visible()
    snap(page, "jobs-detail-running")

    update_job(live_bastion, job_id, status="failed", rows_done=3006,
               message="Row 3007: “abc” is not a number in column “price”.",
               error={"row": 3007, "column": "price", "reason": "not a number"})
    expect(page.locator("#job-status")).to_have_text("Failed")
    expect(page.locator("#job-message")).to_have_text("Row 3007: “abc” is not a number in column “price”.")
    expect(page.locator("#job-error [data-error=row]")).to_have_text("3007")
    expect(page.locator("#job-error [data-error=column]")).to_have_text("price")
    expect(page.locator("#job-error")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel import")).to_be_hidden()
    expect(page.locator("#job-refresh")).to_be_hidden()
    assert page.evaluate("window.bastionNotReloaded") is True
    seen = len(polls)
    assert seen >= 2
    time.sleep(2.5)
    assert len(polls) == seen, "the page kept polling after the job had finished"
    snap(page, "jobs-detail-failed")


def test_without_javascript_a_refresh_link_shows_the_progress(live_bastion: LiveBastion, jobs_user: str,
                                                              new_page) -> None:
    job_id = create_running_import(live_bastion)
    page: Page = new_page(java_script_enabled=False)
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, USER, NEW_PASSWORD)
    page.goto(live_bastion.url(f"/jobs/{job_id}/"))
    expect(page.locator("#job-percent")).to_have_text("10%")
    update_job(live_bastion, job_id, bytes_done=900, rows_done=4500)
    page.get_by_role("link", name="Refresh").click()
    expect(page.locator("#job-percent")).to_have_text("90%")
    expect(page.locator("#job-summary")).to_contain_text("4,500 rows done")
