"""The Sessions page in a real browser against a real server (T10): the same user signed in from two
browsers (a laptop and a phone, told apart by their user agents) sees both sessions in one, ends the
other, and the other's next page is the login page; zero CSP violations (T05)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.live.conftest import LiveBastion
from tests.live.test_browser_e2e import LOGIN_PAGE, open_user_menu, sign_in, snap
from tests.live.test_jobs_live import django

pytestmark = [pytest.mark.live, pytest.mark.browser]

USER = "sessions-browser"
PASSWORD = "Quartz-meadow-lantern-83"
PHONE_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


@pytest.fixture(scope="module")
def sessions_user(live_bastion: LiveBastion) -> str:
    """A user without an admin role: no second factor to enrol, two sign-ins without waiting for codes."""
    django(live_bastion, "from django.contrib.auth import get_user_model\n"
                         f"get_user_model().objects.create_user({USER!r}, password={PASSWORD!r})")
    return USER


def signed_in_page(live: LiveBastion, new_page: Callable[..., Page], **context_options: object) -> Page:
    page = new_page(**context_options)
    page.goto(live.url("/accounts/login/"))
    sign_in(page, USER, PASSWORD)
    expect(page).to_have_url(live.url("/"))
    return page


def test_T10_list_sessions_and_end_the_other_one(live_bastion: LiveBastion, sessions_user: str,
                                                 new_page: Callable[..., Page]) -> None:
    live = live_bastion
    phone = signed_in_page(live, new_page, user_agent=PHONE_AGENT)
    laptop = signed_in_page(live, new_page)

    open_user_menu(laptop)
    laptop.locator("details.usermenu").get_by_role("link", name="Sessions").click()
    expect(laptop.get_by_role("heading", name="Sessions")).to_be_visible()
    rows = laptop.locator("table.sessions tbody tr")
    expect(rows).to_have_count(2)
    this_one = rows.filter(has_text="This session")
    expect(this_one).to_contain_text("Chrome on Linux")
    other = rows.filter(has_text="Safari on iOS")
    expect(other).to_contain_text("127.0.0.1")
    expect(this_one.get_by_role("button")).to_have_count(0)  # this session ends with Log out
    expect(laptop.get_by_role("button", name="Sign out all other sessions")).to_be_visible()
    snap(laptop, "sessions")

    other.get_by_role("button", name="End the session on Safari on iOS at 127.0.0.1").click()
    expect(laptop.locator("ul.messages")).to_contain_text("Session on Safari on iOS (127.0.0.1) ended.")
    expect(rows).to_have_count(1)
    expect(laptop.get_by_role("button", name="Sign out all other sessions")).to_have_count(0)

    phone.goto(live.url("/jobs/"))
    expect(phone).to_have_url(LOGIN_PAGE)
    expect(phone.get_by_role("heading", name="Sign in")).to_be_visible()

    laptop.goto(live.url("/jobs/"))
    expect(laptop).to_have_url(live.url("/jobs/"))
