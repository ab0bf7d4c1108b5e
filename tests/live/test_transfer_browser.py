"""Exporting in a real browser against a real server: the filtered, sorted view of the demo's orders, as CSV,
from the table page's Export… button; the file holds exactly the rows shown, in order; zero CSP violations."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import LiveBastion
from tests.live.test_browser_e2e import NEW_PASSWORD, sign_in, snap
from tests.live.test_explorer_browser import DEMO

pytestmark = [pytest.mark.live, pytest.mark.browser]


def test_export_a_filtered_view_as_csv(live_bastion: LiveBastion, browser_page: Page) -> None:
    live_bastion.create_admin("exa", NEW_PASSWORD)
    page = browser_page
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "exa", NEW_PASSWORD)
    page.get_by_role("link", name=DEMO).click()
    page.get_by_role("link", name="orders", exact=True).click()
    page.locator("#fc1").select_option("status")
    page.locator("#fo1").select_option("eq")
    page.locator("#fv1").fill("paid")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.browse tbody tr").first).to_be_visible()

    page.get_by_role("link", name="Export…").click()
    expect(page.get_by_role("heading", name="Export “orders”")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("the rows matching the filters")
    snap(page, "transfer-export")
    page.get_by_label("CSV").check()
    with page.expect_download() as caught:
        page.get_by_role("button", name="Download").click()
    download = caught.value
    assert download.suggested_filename.endswith(".csv") and "orders" in download.suggested_filename
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    status = rows[0].index("status")
    assert len(rows) > 1 and {row[status] for row in rows[1:]} == {"paid"}
