"""The data explorer in a real browser against a real server: browse, filter, sort, page deep, edit,
lose a race, delete and revert on the demo shop, with zero CSP violations (T03, T05, T37, T38)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import LiveBastion
from tests.live.test_browser_e2e import NEW_PASSWORD, sign_in, snap

pytestmark = [pytest.mark.live, pytest.mark.browser]

DEMO = "Demo shop (SQLite)"


def open_table(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Databases").click()
    page.get_by_role("link", name=DEMO).click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(DEMO)))).to_be_visible()
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def column_texts(page: Page, index: int) -> list[str]:
    """The text of one column (1-based, counting the selection and open columns) of the rows shown."""
    return page.locator(f"table.browse tbody tr td:nth-child({index})").all_inner_texts()


def test_browse_filter_sort_and_page_deep(live_bastion: LiveBastion, browser_page: Page) -> None:
    live_bastion.create_admin("olga", NEW_PASSWORD)
    page = browser_page
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "olga", NEW_PASSWORD)
    page.get_by_role("link", name=DEMO).click()
    expect(page.get_by_role("cell", name="orders", exact=True)).to_be_visible()
    snap(page, "explorer-database")

    page.get_by_role("link", name="orders", exact=True).click()
    expect(page.locator("table.browse tbody tr")).to_have_count(50)
    snap(page, "explorer-table")

    # Filter: status = paid (the first filter row), then sort by total, descending.
    page.locator("#fc1").select_option("status")
    page.locator("#fo1").select_option("eq")
    page.locator("#fv1").fill("paid")
    page.get_by_role("button", name="Apply").click()
    statuses = column_texts(page, 6)  # select, open, id, customer_id, ordered_at, status
    assert statuses and set(statuses) == {"paid"}
    page.get_by_role("link", name="total").click()
    page.get_by_role("link", name=re.compile(r"total ▲")).click()
    totals = [float(t) for t in column_texts(page, 7)]
    assert totals == sorted(totals, reverse=True)
    snap(page, "explorer-filtered-sorted")

    # Deep: the last page, then back one, keeps filter and sort.
    page.get_by_role("link", name="Last »").click()
    last = [float(t) for t in column_texts(page, 7)]
    assert last == sorted(last, reverse=True) and set(column_texts(page, 6)) == {"paid"}
    page.get_by_role("link", name=re.compile("Previous$")).click()
    previous = [float(t) for t in column_texts(page, 7)]
    assert previous and min(previous) >= max(last)
    page.get_by_role("link", name="« First").click()
    assert [float(t) for t in column_texts(page, 7)] == totals


def test_edit_conflict_delete_and_revert(live_bastion: LiveBastion, new_page: Callable[..., Page]) -> None:
    live_bastion.create_admin("pavel", NEW_PASSWORD)
    page = new_page()
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "pavel", NEW_PASSWORD)
    open_table(page, "customers")
    page.get_by_role("link", name="Open row 3", exact=True).click()
    expect(page.get_by_role("heading", name="Row of customers")).to_be_visible()
    snap(page, "explorer-row")
    row_url = page.url

    # Two edit forms loaded at the same time (two tabs of one user).
    page.get_by_role("link", name="Edit").click()
    edit_url = page.url
    other = page.context.new_page()
    other.goto(edit_url)
    snap(page, "explorer-edit")

    page.get_by_label("phone").fill("+1 555 0100")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("ul.messages")).to_contain_text("Row saved.")
    expect(page.locator("table.record")).to_contain_text("+1 555 0100")

    other.get_by_label(re.compile(r"^name ")).fill("Renamed in a stale form")
    other.get_by_role("button", name="Save").click()
    expect(other.locator(".conflict")).to_contain_text("Someone else changed this row")
    expect(other.locator(".conflict")).to_contain_text("+1 555 0100")
    snap(other, "explorer-conflict")
    other.close()
    page.goto(row_url)
    expect(page.locator("table.record")).not_to_contain_text("Renamed in a stale form")

    # Insert a customer, delete it, then revert the deletion from the table's changes.
    page.goto(row_url)
    page.get_by_role("link", name="customers", exact=True).click()
    page.get_by_role("link", name="Insert row").click()
    page.get_by_label(re.compile(r"^name ")).fill("Grace Example")
    page.get_by_label(re.compile(r"^email ")).fill("grace@example.com")
    page.get_by_label(re.compile(r"^created_at ")).fill("2026-11-23 10:00:00")
    snap(page, "explorer-insert")
    page.get_by_role("button", name="Insert").click()
    expect(page.locator("ul.messages")).to_contain_text("Row inserted.")
    new_row_url = page.url
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete the row").click()
    expect(page.locator("ul.messages")).to_contain_text("Row deleted.")
    page.get_by_role("link", name="Changes").click()
    snap(page, "explorer-changes")
    page.locator("li.change").filter(has_text="row.delete").first.get_by_role("button", name="Revert").click()
    expect(page.locator("ul.messages")).to_contain_text("reverted")
    page.goto(new_row_url)
    expect(page.locator("table.record")).to_contain_text("grace@example.com")
    snap(page, "explorer-row-history")
