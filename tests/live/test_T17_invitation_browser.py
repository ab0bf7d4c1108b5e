"""Invitation and password reset in a real browser against a real server (T17, T05).

The server has no SMTP host, so e-mails are files in <data dir>/mail: the test reads the links there,
as an admin on a laptop would, and the pages say where the files are.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import ConsoleWatch, LiveBastion, pass_second_factor
from tests.live.test_browser_e2e import snap

pytestmark = [pytest.mark.live, pytest.mark.browser]

PASSWORD = "Quartz-meadow-signal-83"
INVITEE_PASSWORD = "Lantern-orchard-velvet-27"


def mailed_link(live: LiveBastion, address: str) -> str:
    """The link in the newest e-mail file sent to ``address``."""
    files = sorted((live.data_dir / "mail").iterdir(), key=lambda f: f.stat().st_mtime)
    mails = [f.read_text(encoding="utf-8") for f in files]
    newest = [m for m in mails if f"To: {address}" in m][-1]
    return re.search(r"^https://\S+$", newest, re.MULTILINE).group(0)


def test_T17_invite_accept_and_reset_in_the_browser(live_bastion: LiveBastion,
                                                    new_page: Callable[..., Page],
                                                    console_watch: ConsoleWatch) -> None:
    live = live_bastion
    console_watch.allow("status of 400")  # the used link's "not valid" page answers 400, as it should
    live.create_admin("inviter", PASSWORD)
    admin = new_page()
    admin.goto(live.url("/accounts/login/"))
    admin.locator("input[name=login]").fill("inviter")
    admin.locator("input[name=password]").fill(PASSWORD)
    with admin.expect_navigation():
        admin.get_by_role("button", name="Sign in", exact=True).click()
    pass_second_factor(admin, "inviter", PASSWORD)

    admin.goto(live.url("/admin/users/"))
    expect(admin.locator("main")).to_contain_text(str(live.data_dir / "mail"))
    admin.get_by_role("link", name="Invite by e-mail").click()
    admin.locator("input[name=username]").fill("newcomer")
    admin.locator("input[name=email]").fill("newcomer@example.com")
    admin.get_by_role("button", name="Send invitation").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text("Invitation sent")
    expect(admin.locator("main")).to_contain_text("messages are written to")
    snap(admin, "invitation-sent")

    link = mailed_link(live, "newcomer@example.com")
    assert link.startswith(live.base_url + "/accounts/invitation/")
    invitee = new_page()
    invitee.goto(link)
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Welcome, newcomer")
    snap(invitee, "invitation-accept")
    invitee.locator("input[name=new_password1]").fill(INVITEE_PASSWORD)
    invitee.locator("input[name=new_password2]").fill(INVITEE_PASSWORD)
    with invitee.expect_navigation():
        invitee.get_by_role("button", name="Set password and sign in").click()
    expect(invitee).to_have_url(live.url("/"))
    invitee.goto(link)
    expect(invitee.locator("main")).to_contain_text("This invitation link is not valid any more")

    stranger = new_page()
    stranger.goto(live.url("/accounts/password/reset/"))
    snap(stranger, "password-reset")
    stranger.locator("input[name=email]").fill("newcomer@example.com")
    with stranger.expect_navigation():
        stranger.get_by_role("button", name="Send reset link").click()
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Check your e-mail")
    stranger.goto(mailed_link(live, "newcomer@example.com"))
    expect(stranger.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    snap(stranger, "password-reset-from-key")
