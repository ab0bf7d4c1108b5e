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


def test_import_a_csv_with_its_preview_and_mapping_and_watch_it_finish(live_bastion: LiveBastion, new_page,
                                                                       tmp_path: Path) -> None:
    """Upload a CSV into the demo's products, map a column whose header differs, start, and watch the job's
    progress bar reach 100 % (the embedded worker of `bastion serve` runs it); the rows are then there."""
    live_bastion.create_admin("imp", NEW_PASSWORD)
    rows = 30_000
    source = tmp_path / "new products.csv"
    with source.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["sku", "Product name", "category", "price", "stock", "supplier"])
        writer.writerows([f"IMP-{i:06d}", f"Imported product {i}", "imported", f"{i % 100}.99", i % 7, "acme"]
                         for i in range(rows))
    page: Page = new_page()
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "imp", NEW_PASSWORD)
    page.get_by_role("link", name=DEMO).click()
    page.get_by_role("link", name="products", exact=True).click()
    page.get_by_role("link", name="Import…").click()
    page.get_by_label("File").set_input_files(str(source))
    page.get_by_role("button", name="Upload and preview").click()

    expect(page.get_by_role("heading", name="Import “new products.csv” into “products”")).to_be_visible()
    preview = page.locator("table.import-preview")
    expect(preview.locator("thead")).to_contain_text("Product name")
    expect(preview.locator("tbody tr").first).to_contain_text("IMP-000000")
    expect(page.get_by_label("sku", exact=True)).to_have_value("sku")  # matched by name
    expect(page.get_by_label("Product name")).to_have_value("")  # no column of that name: skipped
    page.get_by_label("Product name").select_option("name")
    snap(page, "transfer-import-preview")
    page.get_by_role("button", name="Start the import").click()

    expect(page.get_by_role("heading", name="Import “products”")).to_be_visible()
    expect(page.locator("progress#job-bar")).to_have_attribute("value", "100.0", timeout=60_000)
    expect(page.locator("main")).to_contain_text(f"Imported {rows:,} rows")
    snap(page, "transfer-import-done")
    page.goto(live_bastion.url("/"))
    page.get_by_role("link", name=DEMO).click()
    page.get_by_role("link", name="products", exact=True).click()
    page.locator("#fc1").select_option("category")
    page.locator("#fo1").select_option("eq")
    page.locator("#fv1").fill("imported")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.browse tbody tr").first).to_contain_text("IMP-")
