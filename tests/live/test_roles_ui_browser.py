"""The role pages in a real browser against a real server: forms work without JavaScript,
hostile names stay text (T03), no CSP violation (T05), no sideways scrolling on a phone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import ConsoleWatch, LiveBastion, pass_second_factor
from tests.live.test_browser_e2e import snap

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "Quartz-meadow-signal-83"
HOSTILE = '<img src=x onerror="alert(1)">"><script>alert(2)</script>'
PHONE = {"width": 390, "height": 844}


def sign_in(page: Page, live: LiveBastion, username: str) -> None:
    page.goto(live.url("/accounts/login/"))
    page.locator("input[name=login]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    pass_second_factor(page, username, PASSWORD)
    expect(page).to_have_url(live.url("/"))


def no_dialogs(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    return seen


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_T03_T05_manage_a_role_in_the_browser(live_bastion: LiveBastion, new_page: Callable[..., Page],
                                              console_watch: ConsoleWatch, javascript: bool) -> None:
    live = live_bastion
    username = f"roles-{'js' if javascript else 'nojs'}"
    live.create_admin(username, PASSWORD)
    page = new_page(java_script_enabled=javascript)
    dialogs = no_dialogs(page)
    sign_in(page, live, username)
    role_name = f"{HOSTILE} {username}"

    page.goto(live.url("/admin/roles/"))
    page.get_by_role("link", name="New role").click()
    page.locator("input[name=name]").fill(role_name)
    page.locator("textarea[name=description]").fill(HOSTILE)
    page.get_by_role("button", name="Create role").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(role_name)

    grant = page.locator("#add-grant")
    grant.locator("select[name=action]").select_option("view")
    grant.locator("select[name=connection]").select_option(label="Demo shop (SQLite)")
    grant.locator("input[name=table]").fill(HOSTILE)
    grant.locator("input[name=column]").fill("email")
    grant.locator("select[name=column_mode]").select_option("masked")
    grant.locator("select[name=mask_rule]").select_option("email_domain")
    grant.get_by_role("button", name="Add grant").click()
    expect(page.locator("#grants table")).to_contain_text(HOSTILE)
    expect(page.locator("#grants table")).to_contain_text("Masked: E-mail domain only")

    template = page.locator("#template")
    template.locator("select[name=template]").select_option("Editor")
    template.locator("select[name=connection]").select_option(label="Demo shop (SQLite)")
    template.get_by_role("button", name="Apply template").click()
    expect(page.locator(".messages")).to_contain_text("Editor template applied")

    members = page.locator("#members")
    members.locator("select[name=user]").select_option(username)
    members.get_by_role("button", name="Add member").click()
    expect(page.locator("#members .member-list")).to_contain_text(username)
    snap(page, f"role-detail-{'js' if javascript else 'nojs'}")

    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size({"width": 1280, "height": 800})

    console_watch.allow("status of 400")  # the refused delete below answers 400 on purpose
    delete = page.locator("#delete")
    delete.locator("input[name=confirmation]").fill("not the name")
    delete.get_by_role("button", name="Delete role").click()
    expect(page.locator("p.error")).to_contain_text("exactly to delete it")
    page.locator("#delete input[name=confirmation]").fill(role_name)
    page.locator("#delete").get_by_role("button", name="Delete role").click()
    expect(page).to_have_url(live.url("/admin/roles/"))
    expect(page.locator(".messages")).to_contain_text("deleted")
    assert dialogs == []
