"""End-to-end in a real browser against a real server: no page may break the CSP (T05).

Set BASTION_TEST_SCREENSHOTS=1 to save full-page screenshots of every page
visited (desktop, desktop dark and phone) in test-artifacts/screenshots/.
(A BASTION_TEST_ prefix because tests/settings.py drops every other BASTION_ variable.)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import (
    DESKTOP,
    MFA_INDEX,
    MFA_STEP,
    ConsoleWatch,
    LiveBastion,
    enrol_totp,
    pass_second_factor,
    totp_code,
)

pytestmark = [pytest.mark.live, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "Granite-lantern-orbit-47"
LOGIN_PAGE = re.compile(r"/accounts/login/(\?.*)?$")


def snap(page: Page, name: str) -> None:
    """Full-page screenshots of ``page`` when BASTION_TEST_SCREENSHOTS=1 (for humans to look at)."""
    if os.environ.get("BASTION_TEST_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = (("desktop", DESKTOP, "light"), ("desktop-dark", DESKTOP, "dark"),
             ("phone", PHONE, "light"))
    for label, size, scheme in shots:
        page.set_viewport_size(size)
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    page.emulate_media(color_scheme="light")


def sign_in(page: Page, username: str, password: str) -> None:
    page.locator("input[name=login]").fill(username)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    pass_second_factor(page, username, password)


def open_user_menu(page: Page) -> None:
    menu = page.locator("details.usermenu")
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    expect(menu.get_by_role("button", name="Log out")).to_be_visible()


def log_out(page: Page) -> None:
    open_user_menu(page)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(LOGIN_PAGE)


def test_T05_first_login_change_password_logout_no_csp_violations(
    live_bastion: LiveBastion, browser_page: Page,
) -> None:
    page, live = browser_page, live_bastion
    page.goto(live.url("/"))
    expect(page).to_have_url(LOGIN_PAGE)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    snap(page, "login")

    sign_in(page, live.admin_username, live.one_time_password)
    expect(page).to_have_url(live.url("/accounts/password/change/"))
    expect(page.locator("ul.messages")).to_contain_text("Choose a new password")
    page.goto(live.url("/audit/"))  # forced: every other page leads back here
    expect(page).to_have_url(live.url("/accounts/password/change/"))
    snap(page, "password-change")

    page.locator("input[name=oldpassword]").fill(live.one_time_password)
    page.locator("input[name=password1]").fill(NEW_PASSWORD)
    page.locator("input[name=password2]").fill(NEW_PASSWORD)
    page.locator("main form").get_by_role("button", name="Change Password").click()
    expect(page.locator("ul.messages")).to_contain_text("Password successfully changed")

    # The Admin role requires two-factor authentication: nothing else opens until it is set up.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Databases").click()
    expect(page).to_have_url(live.url(MFA_INDEX))
    expect(page.locator("ul.messages")).to_contain_text("requires two-factor authentication")
    snap(page, "mfa-required")
    enrol_totp(page, live.admin_username, NEW_PASSWORD)
    expect(page).to_have_url(live.url("/accounts/2fa/recovery-codes/"))
    snap(page, "mfa-recovery-codes")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Databases").click()
    expect(page).to_have_url(live.url("/"))
    expect(page.get_by_role("heading", name="Demo shop (SQLite)")).to_be_visible()
    snap(page, "home")

    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(live.url("/audit/"))
    events = page.locator("table.data tbody")
    expect(events).to_contain_text("login.success")
    expect(events).to_contain_text("password.changed")
    expect(events).to_contain_text("mfa.added")
    snap(page, "audit-log")

    open_user_menu(page)
    snap(page, "user-menu")
    log_out(page)
    page.goto(live.url("/audit/"))
    expect(page).to_have_url(LOGIN_PAGE)  # the session is really gone

    # Signing in again takes the password, then a code of the authenticator app.
    page.locator("input[name=login]").fill(live.admin_username)
    page.locator("input[name=password]").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(live.url(MFA_STEP))))
    snap(page, "mfa-code")
    page.locator("input[name=code]").fill(totp_code(live.admin_username))
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page).to_have_url(live.url("/audit/"))


def test_T05_wrong_password_shows_error(
    live_bastion: LiveBastion, browser_page: Page,
) -> None:
    live_bastion.create_admin("carol", NEW_PASSWORD)
    page = browser_page
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "carol", NEW_PASSWORD + "-wrong")
    expect(page).to_have_url(LOGIN_PAGE)
    expect(page.locator("main")).to_contain_text("not correct")
    snap(page, "login-error")

    sign_in(page, "carol", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Demo shop (SQLite)")).to_be_visible()


def test_T05_works_with_javascript_disabled(
    live_bastion: LiveBastion, new_page: Callable[..., Page],
) -> None:
    live_bastion.create_admin("dave", NEW_PASSWORD)
    page = new_page(java_script_enabled=False)
    page.goto(live_bastion.url("/"))
    expect(page).to_have_url(LOGIN_PAGE)
    sign_in(page, "dave", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Demo shop (SQLite)")).to_be_visible()
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("table.data")).to_contain_text("login.success")
    log_out(page)


def test_T05_error_page_has_no_csp_violations(
    live_bastion: LiveBastion, browser_page: Page, console_watch: ConsoleWatch,
) -> None:
    console_watch.allow("status of 404")  # Chromium logs the page's own 404 as a console error
    response = browser_page.goto(live_bastion.url("/no-such-page/"))
    assert response is not None and response.status == 404
    expect(browser_page.get_by_role("heading", name="Not found")).to_be_visible()
    snap(browser_page, "not-found")


SIGNED_IN_PAGES = ["/", "/audit/", "/audit/?outcome=failure&since=not-a-date",
                   "/accounts/password/change/", "/accounts/logout/"]
ANONYMOUS_PAGES = ["/accounts/login/", "/accounts/password/reset/"]


def assert_styled(page: Page) -> None:
    """bastion.css is loaded and applied (a blocked or missing stylesheet leaves body a block)."""
    assert page.evaluate("getComputedStyle(document.body).display") == "flex", page.url


def test_T05_every_page_renders_without_csp_violations(
    live_bastion: LiveBastion, new_page: Callable[..., Page],
) -> None:
    anonymous = new_page()
    for path in ANONYMOUS_PAGES:
        response = anonymous.goto(live_bastion.url(path))
        assert response is not None and response.status == 200, path
        assert_styled(anonymous)

    live_bastion.create_admin("erin", NEW_PASSWORD)
    page = new_page()
    page.goto(live_bastion.url("/accounts/login/"))
    sign_in(page, "erin", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Demo shop (SQLite)")).to_be_visible()
    for path in SIGNED_IN_PAGES:
        response = page.goto(live_bastion.url(path))
        assert response is not None and response.status == 200, path
        assert page.url == live_bastion.url(path), f"{path} redirected to {page.url}"
        assert_styled(page)
