"""The SQL console in a real browser against a real server: run a query with Ctrl+Enter, page its results,
see a refusal, explain, and get the draft back after signing out; zero CSP violations (T05, T21)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import ConsoleWatch, LiveBastion
from tests.live.test_browser_e2e import NEW_PASSWORD, sign_in, snap

pytestmark = [pytest.mark.live, pytest.mark.browser]

DEMO = "Demo shop (SQLite)"


def open_console(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Databases").click()
    page.get_by_role("link", name=DEMO).click()
    page.get_by_role("link", name="SQL console").click()
    expect(page.get_by_role("heading", name=re.compile("SQL console"))).to_be_visible()


def test_run_page_refuse_explain_and_keep_the_draft(live_bastion: LiveBastion, browser_page: Page,
                                                    console_watch: ConsoleWatch) -> None:
    console_watch.allow("status of 403")  # the refused ATTACH below answers 403 on purpose
    live_bastion.create_admin("quinn", NEW_PASSWORD)
    page = browser_page
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "quinn", NEW_PASSWORD)
    open_console(page)
    snap(page, "console-empty")

    editor = page.locator("textarea[name=sql]")
    editor.fill("SELECT id, status, total FROM orders ORDER BY id;\nSELECT count(*) AS customers FROM customers")
    editor.press("Control+Enter")  # console.js: runs without the mouse
    expect(page.locator("#result-1 table.browse tbody tr")).to_have_count(100)
    expect(page.locator("#result-2 table.browse tbody tr")).to_have_count(1)
    snap(page, "console-results")

    page.locator("#result-1").get_by_role("button", name=re.compile("^Next")).click()
    first_id = page.locator("#result-1 table.browse tbody tr").first.locator("td").nth(1)
    expect(first_id).to_have_text("101")

    editor = page.locator("textarea[name=sql]")
    editor.fill("ATTACH DATABASE '/tmp/x.db' AS x")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("was refused")
    snap(page, "console-refused")

    page.locator("textarea[name=sql]").fill("SELECT * FROM orders WHERE customer_id = 3")
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("ul.plan-tree")).to_contain_text("orders")
    snap(page, "console-explain")

    # The draft is saved by the page's script while typing; it comes back after signing out.
    page.locator("textarea[name=sql]").fill("SELECT 'kept across logins'")
    with page.expect_response(lambda r: r.url.endswith("/console/draft/") and r.status == 204, timeout=15000):
        pass
    page.locator("details.usermenu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "quinn", NEW_PASSWORD)
    open_console(page)
    expect(page.locator("textarea[name=sql]")).to_have_value("SELECT 'kept across logins'")
