"""Passkeys in a real browser (T16): Chromium's virtual authenticator, driven through the DevTools protocol.

WebAuthn refuses IP addresses as relying-party ids, so these pages are opened as https://localhost:PORT
(a name Bastion answers to by default, and a secure context for the browser).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import MFA_STEP, ConsoleWatch, LiveBastion, pass_second_factor
from tests.live.test_browser_e2e import snap

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "Saffron-harbour-kettle-61"
USERNAME = "passkey-admin"


def virtual_authenticator(page: Page) -> None:
    """A platform authenticator with user verification, as a laptop's fingerprint reader."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True,
    }})


def test_T16_add_a_passkey_then_sign_in_with_it_alone(live_bastion: LiveBastion,
                                                      new_page: Callable[..., Page],
                                                      console_watch: ConsoleWatch) -> None:
    live = live_bastion
    live.create_admin(USERNAME, PASSWORD)
    origin = f"https://localhost:{live.port}"
    page = new_page()
    virtual_authenticator(page)

    page.goto(origin + "/accounts/login/")
    page.locator("input[name=login]").fill(USERNAME)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    pass_second_factor(page, USERNAME, PASSWORD)  # the Admin role requires a second factor: an app first

    page.goto(origin + "/accounts/2fa/webauthn/add/")
    if "/reauthenticate/" in page.url:
        page.locator("input[name=password]").fill(PASSWORD)
        page.locator("main form").get_by_role("button").click()
    expect(page.get_by_role("heading", name="Add Security Key")).to_be_visible()
    page.locator("input[name=name]").fill("Laptop fingerprint")
    page.locator("input[name=passwordless]").check()
    snap(page, "mfa-add-passkey")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("ul.messages")).to_contain_text("Security key added")

    page.goto(origin + "/accounts/2fa/webauthn/")
    expect(page.locator("main")).to_contain_text("Laptop fingerprint")

    page.locator("details.usermenu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(origin + "/")
    expect(page.locator("details.usermenu summary")).to_contain_text(USERNAME)

    # The same key also serves as the second step after a password.
    page.locator("details.usermenu summary").click()
    page.get_by_role("button", name="Log out").click()
    page.locator("input[name=login]").fill(USERNAME)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(origin + MFA_STEP)
    page.get_by_role("button", name="Use a security key").click()
    expect(page).to_have_url(origin + "/")
    assert console_watch.unexpected() == []
