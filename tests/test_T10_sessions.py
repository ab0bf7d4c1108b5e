"""A user's sessions (T10): listed on the Sessions page, ended one by one or all at once, by the user
or an administrator; every ending audited; ended sessions get the login page.

Real allauth logins (bastion's login view) create the sessions; clients differ by user agent and address.
"""

from __future__ import annotations

import time

import pytest
from allauth.usersessions.models import UserSession
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.http import HttpRequest
from django.test.utils import CaptureQueriesContext

from bastion.accounts.middleware import SEEN
from bastion.accounts.sessions import TRACKED, describe_device, end_sessions
from bastion.audit.models import AuditEvent
from tests.conftest import STRONG_PASSWORD, HttpsClient, login

pytestmark = pytest.mark.django_db

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/126.0.0.0 Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
EDGE_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0")
SESSIONS = "/accounts/sessions/"


def signed_in(username: str, agent: str = CHROME_LINUX, ip: str = "198.51.100.7") -> HttpsClient:
    client = HttpsClient(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    assert login(client, username).status_code == 302
    return client


def is_login_page(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def session_of(client: HttpsClient) -> UserSession:
    return UserSession.objects.get(session_key=client.session.session_key)


def revoked_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="session.revoked").order_by("seq"))


@pytest.fixture
def bob(make_user):
    return make_user("bob")



# --- the Sessions page ---------------------------------------------------------------------------------------------
def test_T10_sessions_page_lists_the_users_own_sessions_only(user, bob):
    here = signed_in(user.username, FIREFOX_WINDOWS, "198.51.100.7")
    signed_in(user.username, CHROME_LINUX, "203.0.113.9")
    signed_in(bob.username, SAFARI_IPHONE, "192.0.2.44")

    page = here.get(SESSIONS)

    assert page.status_code == 200
    html = page.content.decode()
    assert "Firefox on Windows" in html and "Chrome on Linux" in html
    assert "198.51.100.7" in html and "203.0.113.9" in html
    assert "Safari on iOS" not in html and "192.0.2.44" not in html
    assert html.count("This session") == 1
    assert "Sign out all other sessions" in html


def test_T10_user_agent_is_shown_as_plain_escaped_text(user):
    here = signed_in(user.username, '<script>alert("x")</script>')

    html = here.get(SESSIONS).content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html  # the whole string, escaped, in the title attribute
    assert "Unknown browser" in html


@pytest.mark.parametrize(("agent", "summary"), [
    (FIREFOX_WINDOWS, "Firefox on Windows"),
    (CHROME_LINUX, "Chrome on Linux"),
    (SAFARI_IPHONE, "Safari on iOS"),
    (EDGE_WINDOWS, "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.5 Safari/605.1.15", "Safari on macOS"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Mobile Safari/537.36", "Chrome on Android"),
    ("curl/8.5.0", "curl"),
    ("", "Unknown browser"),
    ("<b>bold</b>", "Unknown browser"),
])
def test_device_summary(agent, summary):
    assert describe_device(agent) == summary


# --- ending sessions: the user ---------------------------------------------------------------------------------
def test_T10_user_ends_one_other_session_which_then_gets_the_login_page(user):
    here = signed_in(user.username, FIREFOX_WINDOWS)
    other = signed_in(user.username, CHROME_LINUX)
    third = signed_in(user.username, SAFARI_IPHONE)

    response = here.post(f"{SESSIONS}{session_of(other).pk}/end/")

    assert response.status_code == 302 and response["Location"] == SESSIONS
    assert is_login_page(other.get("/"))
    assert here.get("/").status_code == 200
    assert third.get("/").status_code == 200
    [event] = revoked_events()
    assert (event.actor, event.target, event.details) == (user.username, user.username,
                                                          {"count": 1, "scope": "one"})


def test_T10_another_users_session_cannot_be_ended(user, bob):
    here = signed_in(user.username)
    bobs = signed_in(bob.username)

    response = here.post(f"{SESSIONS}{session_of(bobs).pk}/end/")

    assert response.status_code == 404
    assert bobs.get("/").status_code == 200
    assert UserSession.objects.filter(user=bob).count() == 1
    assert revoked_events() == []


def test_T10_ending_the_current_session_here_is_refused_with_a_pointer_to_log_out(user):
    here = signed_in(user.username)

    response = here.post(f"{SESSIONS}{session_of(here).pk}/end/", follow=True)

    assert "Log out" in response.content.decode()
    assert here.get("/").status_code == 200
    assert revoked_events() == []


def test_T10_sign_out_all_other_sessions_keeps_the_current_one(user, bob):
    here = signed_in(user.username)
    others = [signed_in(user.username, FIREFOX_WINDOWS), signed_in(user.username, SAFARI_IPHONE)]
    bobs = signed_in(bob.username)

    assert here.post(SESSIONS).status_code == 302

    assert here.get("/").status_code == 200
    assert all(is_login_page(other.get("/")) for other in others)
    assert bobs.get("/").status_code == 200
    [event] = revoked_events()
    assert (event.actor, event.target, event.details) == (user.username, user.username,
                                                          {"count": 2, "scope": "others"})


def test_T10_ending_sessions_needs_a_post(user):
    here = signed_in(user.username)
    other = signed_in(user.username)

    assert here.get(f"{SESSIONS}{session_of(other).pk}/end/").status_code == 405
    assert other.get("/").status_code == 200


# --- ending sessions: an administrator -------------------------------------------------------------------------------
def test_T10_admin_sees_and_ends_one_session_of_any_user(admin_client, user):
    first = signed_in(user.username, FIREFOX_WINDOWS)
    second = signed_in(user.username, SAFARI_IPHONE)

    detail = admin_client.get(f"/admin/users/{user.pk}/")
    assert "Firefox on Windows" in detail.content.decode() and "Safari on iOS" in detail.content.decode()

    response = admin_client.post(f"/admin/users/{user.pk}/sessions/{session_of(first).pk}/end/")

    assert response.status_code == 302 and response["Location"] == f"/admin/users/{user.pk}/"
    assert is_login_page(first.get("/"))
    assert second.get("/").status_code == 200
    [event] = revoked_events()
    assert (event.actor, event.target, event.details) == ("root-admin", user.username,
                                                          {"count": 1, "scope": "one"})


def test_T10_admin_ends_all_sessions_of_a_user(admin_client, user, bob):
    sessions = [signed_in(user.username), signed_in(user.username, FIREFOX_WINDOWS)]
    bobs = signed_in(bob.username)

    response = admin_client.post(f"/admin/users/{user.pk}/sessions/end/")

    assert response.status_code == 302
    assert all(is_login_page(s.get("/")) for s in sessions)
    assert bobs.get("/").status_code == 200
    assert admin_client.get("/").status_code == 200
    [event] = revoked_events()
    assert (event.actor, event.target, event.details) == ("root-admin", user.username,
                                                          {"count": 2, "scope": "all"})


def test_T10_admin_ending_all_own_sessions_keeps_the_current_one(admin, admin_client):
    elsewhere = signed_in(admin.username)

    admin_client.post(f"/admin/users/{admin.pk}/sessions/end/")

    assert admin_client.get("/").status_code == 200
    assert is_login_page(elsewhere.get("/"))
    assert revoked_events()[0].details == {"count": 1, "scope": "others"}


def test_T10_a_session_of_another_user_is_not_ended_through_the_wrong_user(admin_client, user, bob):
    bobs = signed_in(bob.username)

    response = admin_client.post(f"/admin/users/{user.pk}/sessions/{session_of(bobs).pk}/end/")

    assert response.status_code == 404
    assert bobs.get("/").status_code == 200


def test_T10_non_admin_cannot_end_anybody_elses_sessions(user, bob):
    here = signed_in(user.username)
    bobs = signed_in(bob.username)

    assert here.post(f"/admin/users/{bob.pk}/sessions/{session_of(bobs).pk}/end/").status_code == 403
    assert here.post(f"/admin/users/{bob.pk}/sessions/end/").status_code == 403

    assert bobs.get("/").status_code == 200
    assert revoked_events() == []


# --- the service, tracking and password change ----------------------------------------------------------------------
def test_T10_end_sessions_keeps_only_the_given_request_and_catches_sessions_without_allauth_login(user):
    here = signed_in(user.username)
    other = signed_in(user.username)
    forced = HttpsClient()
    forced.force_login(user)  # no allauth login signal: no UserSession row yet
    assert forced.get("/").status_code == 200  # its first request records it

    request = HttpRequest()
    request.session = here.session
    assert end_sessions(user, keep=request) == 2

    assert here.get("/").status_code == 200
    assert is_login_page(other.get("/")) and is_login_page(forced.get("/"))
    assert revoked_events() == []  # the caller's own event says why (e.g. "mfa.reset")


def test_T10_end_sessions_without_keep_ends_every_session(user):
    clients = [signed_in(user.username), signed_in(user.username)]
    stolen = clients[0].session.session_key

    assert end_sessions(user) == 2

    assert all(is_login_page(c.get("/")) for c in clients)
    assert not SessionStore().exists(stolen)
    assert not UserSession.objects.filter(user=user).exists()


def usersession_writes(queries) -> list[str]:
    table = UserSession._meta.db_table
    return [q["sql"] for q in queries if table in q["sql"] and not q["sql"].lstrip().upper().startswith("SELECT")]


def test_T10_activity_is_recorded_at_most_once_a_minute(user):
    here = signed_in(user.username, ip="198.51.100.7")
    here.get("/")  # the first request after login records the session once more

    with CaptureQueriesContext(connection) as quiet:
        here.get("/")
        here.get("/")
    assert usersession_writes(quiet.captured_queries) == []

    session = here.session
    two_minutes_ago = int(time.time()) - 120
    session[SEEN] = two_minutes_ago  # last seen, and recorded, two minutes ago
    session[TRACKED] = [session.session_key, two_minutes_ago]
    session.save()
    before = session_of(here).last_seen_at
    here.defaults["REMOTE_ADDR"] = "203.0.113.50"
    with CaptureQueriesContext(connection) as due:
        here.get("/")
    assert len(usersession_writes(due.captured_queries)) == 1
    row = session_of(here)
    assert row.last_seen_at > before and row.ip == "203.0.113.50"


def test_T10_password_change_removes_the_other_sessions_from_the_list(user):
    here = signed_in(user.username, FIREFOX_WINDOWS)
    other = signed_in(user.username, SAFARI_IPHONE)

    here.post("/accounts/password/change/", {"oldpassword": STRONG_PASSWORD,
                                             "password1": "another-Strong-passw0rd",
                                             "password2": "another-Strong-passw0rd"})

    assert is_login_page(other.get("/"))
    html = here.get(SESSIONS).content.decode()
    assert "Firefox on Windows" in html and "Safari on iOS" not in html


def test_T10_sessions_record_the_address_bastion_trusts_behind_a_proxy(user, settings):
    settings.PROXY_COUNT = 1
    here = HttpsClient(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.77")
    assert login(here, user.username).status_code == 302

    assert session_of(here).ip == "203.0.113.77"
