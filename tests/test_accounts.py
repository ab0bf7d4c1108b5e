"""Accounts: login, sessions, passwords, clipping levels, enumeration, reset tokens, redirects.

SECURITY.md rows T08, T09, T10, T11, T13, T14, T15, T17, T19 (and T33 for the
events they write). Also runs with PostgreSQL as the metadata database.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from bastion.accounts import throttle
from bastion.accounts.middleware import SEEN, STARTED
from bastion.audit.models import AuditEvent
from tests.conftest import STRONG_PASSWORD, HttpsClient, login

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "another-Strong-passw0rd"


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


# --- T08 session cookie -----------------------------------------------------------------
def test_T08_session_cookie_flags_on_login_response(client, user):
    response = login(client, user.username)
    cookie = response.cookies["__Host-bastion_session"]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert not cookie["domain"]


def test_T08_sessions_are_json_serialised(settings):
    assert settings.SESSION_SERIALIZER.endswith("JSONSerializer")


# --- T09 session fixation -------------------------------------------------------------------
def test_T09_session_key_rotates_at_login(client, user):
    client.get("/accounts/login/")
    client.session.save()
    before = client.session.session_key
    login(client, user.username)
    after = client.session.session_key
    assert before and after and before != after
    assert not SessionStore().exists(before)


def test_T09_session_key_rotates_at_password_change(logged_in):
    before = logged_in.session.session_key
    response = logged_in.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert logged_in.session.session_key != before
    assert logged_in.get("/").status_code == 200


# --- T10 stale sessions ---------------------------------------------------------------------
def _age_session(client, **seconds_ago):
    session = client.session
    now = int(time.time())
    for key, ago in seconds_ago.items():
        session[{"started": STARTED, "seen": SEEN}[key]] = now - ago
    session.save()


def test_T10_idle_timeout_ends_session(logged_in, settings):
    _age_session(logged_in, seen=settings.SESSION_IDLE_TIMEOUT + 5)
    response = logged_in.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert logged_in.get("/").status_code == 302
    event = AuditEvent.objects.get(action="session.expired")
    assert event.details == {"reason": "idle"}


def test_T10_activity_within_idle_timeout_keeps_session(logged_in, settings):
    _age_session(logged_in, seen=settings.SESSION_IDLE_TIMEOUT - 60)
    assert logged_in.get("/").status_code == 200
    assert logged_in.get("/").status_code == 200


def test_T10_absolute_timeout_ends_active_session(logged_in, settings):
    _age_session(logged_in, started=settings.SESSION_ABSOLUTE_TIMEOUT + 5, seen=1)
    assert logged_in.get("/").status_code == 302
    assert AuditEvent.objects.get(action="session.expired").details == {"reason": "absolute"}


def test_T10_logout_invalidates_session_server_side(logged_in):
    stolen = logged_in.cookies["__Host-bastion_session"].value
    assert logged_in.post("/accounts/logout/").status_code == 302
    assert not SessionStore().exists(stolen)
    thief = HttpsClient()
    thief.cookies["__Host-bastion_session"] = stolen
    assert thief.get("/").status_code == 302
    assert "logout" in actions()


def test_T10_logout_by_get_changes_nothing(logged_in):
    logged_in.get("/accounts/logout/")
    assert logged_in.get("/").status_code == 200


def test_T10_password_change_logs_out_other_sessions(client, user):
    other = HttpsClient()
    login(client, user.username)
    login(other, user.username)
    client.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302


# --- T11 / T13 passwords --------------------------------------------------------------------
def test_T11_passwords_are_stored_with_argon2id(user):
    assert user.password.startswith("argon2$argon2id$")


def test_T11_older_hashes_are_upgraded_to_argon2id_at_login(client, make_user):
    legacy = make_user("legacy")
    get_user_model().objects.filter(pk=legacy.pk).update(
        password=make_password(STRONG_PASSWORD, hasher="pbkdf2_sha256"))
    assert login(client, "legacy").status_code == 302
    legacy.refresh_from_db()
    assert legacy.password.startswith("argon2$argon2id$")


@pytest.mark.parametrize(("password", "message"), [
    ("Sh0rt-pass", "too short"),
    ("password1234", "too common"),
    ("381938475627", "entirely numeric"),
])
def test_T13_weak_passwords_refused_with_clear_message(logged_in, password, message):
    response = logged_in.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": password, "password2": password})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "password.changed" not in actions()


def test_T13_password_similar_to_username_refused(client, make_user):
    make_user("maximilian.vonhausen")
    login(client, "maximilian.vonhausen")
    response = client.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": "maximilianvonhausen", "password2": "maximilianvonhausen"})
    assert "too similar" in response.content.decode()


def test_T13_minimum_length_is_twelve(settings):
    lengths = [v.get("OPTIONS", {}).get("min_length") for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert 12 in lengths


# --- T14 online guessing --------------------------------------------------------------------
ATTACKER = {"REMOTE_ADDR": "203.0.113.66"}
OTHER_IP = {"REMOTE_ADDR": "198.51.100.9"}


def test_T14_sixth_attempt_from_one_ip_refused_even_with_right_password(client, user):
    for _ in range(5):
        assert login(client, user.username, "wrong-password-xx", **ATTACKER).status_code == 200
    response = login(client, user.username, **ATTACKER)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "Too many attempts" in response.content.decode()
    assert actions().count("login.failed") == 5
    assert "login.clipped" in actions() and "login.refused" in actions()


def test_T14_clipped_ip_cannot_try_other_accounts(client, user, make_user):
    make_user("bob")
    for _ in range(5):
        login(client, user.username, "wrong-password-xx", **ATTACKER)
    assert login(client, "bob", **ATTACKER).status_code == 429


def test_T14_same_account_still_logs_in_from_another_ip(client, user):
    for _ in range(6):
        login(client, user.username, "wrong-password-xx", **ATTACKER)
    assert login(HttpsClient(), user.username, **OTHER_IP).status_code == 302


def test_T14_limits_expire_by_themselves(client, user, settings):
    settings.LOGIN_COOLDOWN = settings.LOGIN_IP_WINDOW = settings.LOGIN_ACCOUNT_IP_WINDOW = 3
    for _ in range(5):
        login(client, user.username, "wrong-password-xx", **ATTACKER)
    assert login(client, user.username, **ATTACKER).status_code == 429
    time.sleep(3.5)
    assert login(client, user.username, **ATTACKER).status_code == 302


def test_T14_account_attacked_from_many_ips_is_slowed_not_locked(client, user, monkeypatch, settings):
    slept: list[float] = []
    monkeypatch.setattr("bastion.accounts.adapter.time.sleep", slept.append)
    for i in range(settings.LOGIN_ACCOUNT_DELAY_AFTER + 3):
        login(HttpsClient(), user.username, "wrong-password-xx", REMOTE_ADDR=f"192.0.2.{i + 1}")
    assert slept and slept == sorted(slept) and slept[-1] > slept[0]
    assert max(slept) <= settings.LOGIN_MAX_DELAY
    assert login(client, user.username, REMOTE_ADDR="192.0.2.200").status_code == 302


def test_T14_failures_raise_an_alert(client, user, caplog):
    for _ in range(5):
        login(client, user.username, "wrong-password-xx", **ATTACKER)
    alerts = [r for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "alert"]
    assert alerts and alerts[0].msg["rule"] == "login_clipping_level"


def test_T14_counters_live_in_the_shared_database(user):
    from bastion.accounts.models import LoginCounter

    throttle.begin_attempt("203.0.113.1", "alice")
    throttle.attempt_failed("203.0.113.1", "alice")
    assert LoginCounter.objects.get(key=throttle._keys("203.0.113.1", "alice")[0]).count == 1


def test_T14_parallel_burst_cannot_slip_under_the_limit(user, settings):
    """Attempts are counted before the password is checked: the 6th of a burst is refused."""
    verdicts = [throttle.begin_attempt("203.0.113.9", "alice") for _ in range(8)]
    assert [v.refused for v in verdicts] == [False] * 5 + [True] * 3


def test_T14_ipv6_addresses_of_one_64_count_together(client, user):
    for i in range(5):
        login(client, user.username, "wrong-password-xx", REMOTE_ADDR=f"2001:db8:1:2::{i + 1}")
    assert login(client, user.username, REMOTE_ADDR="2001:db8:1:2::ffff").status_code == 429
    assert login(HttpsClient(), user.username, REMOTE_ADDR="2001:db8:1:3::1").status_code == 302


def test_T14_a_huge_number_of_failures_never_locks_the_owner_out(client, user, settings):
    from bastion.accounts.models import LoginCounter

    key = throttle._keys("", user.username)[2]
    LoginCounter.objects.create(key=key, count=settings.LOGIN_ACCOUNT_DELAY_AFTER + 5000,
                                expires_at=timezone.now() + timedelta(hours=1))
    assert throttle.delay_for(user.username) == settings.LOGIN_MAX_DELAY
    settings.LOGIN_MAX_DELAY = 0
    assert login(client, user.username).status_code == 302


def test_T14_distributed_guessing_is_counted_exactly_and_never_evicted(user, settings):
    for i in range(400):
        throttle.begin_attempt(f"10.{i // 250}.{i % 250}.1", "alice")
        throttle.attempt_failed(f"10.{i // 250}.{i % 250}.1", "alice")
    assert throttle.delay_for("alice") == settings.LOGIN_MAX_DELAY


def test_T14_windows_are_fixed_not_sliding(user, settings):
    from bastion.accounts.models import LoginCounter

    throttle.begin_attempt("203.0.113.1", "alice")
    throttle.attempt_failed("203.0.113.1", "alice")
    account = LoginCounter.objects.get(key=throttle._keys("", "alice")[2])
    assert (account.expires_at - timezone.now()).total_seconds() > settings.LOGIN_ACCOUNT_WINDOW - 60


# --- T15 enumeration --------------------------------------------------------------------------
def _normalised(response) -> str:
    body = response.content.decode()
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body)
    return re.sub(r"<code>[0-9a-f]{32}</code>", "", body)


def test_T15_unknown_user_and_wrong_password_answer_identically(client, user):
    wrong = login(client, user.username, "wrong-password-xx")
    unknown = login(HttpsClient(), "nobody-here", "wrong-password-xx")
    assert wrong.status_code == unknown.status_code == 200
    assert _normalised(wrong).replace(user.username, "X") == _normalised(unknown).replace("nobody-here", "X")


def test_T15_unknown_user_costs_one_argon2_hash_like_a_wrong_password(client, user, monkeypatch):
    from django.contrib.auth.hashers import Argon2PasswordHasher

    calls: list[str] = []
    original_encode, original_verify = Argon2PasswordHasher.encode, Argon2PasswordHasher.verify
    monkeypatch.setattr(Argon2PasswordHasher, "encode",
                        lambda self, *a, **k: calls.append("hash") or original_encode(self, *a, **k))
    monkeypatch.setattr(Argon2PasswordHasher, "verify",
                        lambda self, *a, **k: calls.append("hash") or original_verify(self, *a, **k))
    login(client, user.username, "wrong-password-xx")
    known = len(calls)
    calls.clear()
    login(HttpsClient(), "nobody-here", "wrong-password-xx")
    assert known == len(calls) == 1


def test_T15_password_reset_answers_the_same_for_unknown_address(client, make_user, mailoutbox):
    make_user("carol", email="carol@example.com")
    known = client.post("/accounts/password/reset/", {"email": "carol@example.com"})
    unknown = HttpsClient().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]


# --- T17 reset tokens ---------------------------------------------------------------------------
def _reset_link(client, make_user, mailoutbox) -> str:
    make_user("dave", email="dave@example.com")
    client.post("/accounts/password/reset/", {"email": "dave@example.com"},
                HTTP_HOST="localhost")
    body = mailoutbox[-1].body
    return re.search(r"https://\S+", body).group(0)


def test_T17_reset_link_built_from_configured_site_url_not_host_header(client, make_user, mailoutbox, settings):
    link = _reset_link(client, make_user, mailoutbox)
    assert link.startswith(settings.SITE_URL + "/accounts/password/reset/key/")


def _use_link(client, link: str, password: str = NEW_PASSWORD):
    path = link.removeprefix("https://127.0.0.1:8443")
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path
    return response, client.post(form_path, {"password1": password, "password2": password})


def test_T17_reset_token_works_once(client, make_user, mailoutbox):
    link = _reset_link(client, make_user, mailoutbox)
    _page, done = _use_link(client, link)
    assert done.status_code == 302
    assert login(HttpsClient(), "dave", NEW_PASSWORD).status_code == 302
    again, _ = _use_link(HttpsClient(), link, "yet-another-Passw0rd!")
    assert again.context["token_fail"] is True
    assert login(HttpsClient(), "dave", "yet-another-Passw0rd!").status_code == 200
    assert "password.reset" in actions()


def test_T17_tampered_reset_token_refused(client, make_user, mailoutbox):
    link = _reset_link(client, make_user, mailoutbox)
    tampered = link[:-3] + ("aaa" if not link.endswith("aaa/") else "bbb") + "/"
    page, _ = _use_link(client, tampered.rstrip("/") + "/" if not tampered.endswith("//") else tampered)
    assert page.context["token_fail"] is True
    assert login(HttpsClient(), "dave", NEW_PASSWORD).status_code == 200


def test_T17_expired_reset_token_refused(client, make_user, mailoutbox, settings):
    link = _reset_link(client, make_user, mailoutbox)
    settings.PASSWORD_RESET_TIMEOUT = -1
    page, _ = _use_link(client, link)
    assert page.context["token_fail"] is True


# --- T19 open redirects ----------------------------------------------------------------------------
@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "http://testserver/", "https:evil.example",
    "/\\evil.example", "javascript:alert(1)",
])
def test_T19_next_to_foreign_or_insecure_target_lands_on_default_page(client, user, target):
    response = client.post(f"/accounts/login/?next={target}",
                           {"login": user.username, "password": STRONG_PASSWORD, "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_T19_next_to_local_page_is_followed(client, user):
    response = client.post("/accounts/login/", {"login": user.username, "password": STRONG_PASSWORD,
                                                "next": "/audit/?actor=x"})
    assert response["Location"] == "/audit/?actor=x"


# --- one-time passwords -------------------------------------------------------------------------
def test_one_time_password_forces_change_before_anything_else(client, db):
    from bastion.accounts.services import create_admin

    admin = create_admin("first-admin")
    response = login(client, "first-admin", admin.password)
    assert response.status_code == 302
    for path in ["/", "/audit/"]:
        page = client.get(path)
        assert page.status_code == 302 and page["Location"] == "/accounts/password/change/"
    form = client.get("/accounts/password/change/")
    assert form.status_code == 200
    assert 'aria-label="Main"' not in form.content.decode()  # no navigation that would only bounce back
    changed = client.post("/accounts/password/change/", {
        "oldpassword": admin.password, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert changed.status_code == 302 and changed["Location"] == "/"
    # Next, the Admin role's second factor (T16): enrolment before anything else.
    assert client.get("/")["Location"] == "/accounts/2fa/"
    assert not get_user_model().objects.get(username="first-admin").must_change_password


def test_admin_creation_validates_given_password(db):
    from django.core.exceptions import ValidationError

    from bastion.accounts.services import create_admin

    with pytest.raises(ValidationError):
        create_admin("weak-admin", "password")
    assert not get_user_model().objects.filter(username="weak-admin").exists()


def test_signup_is_closed(client):
    response = client.post("/accounts/signup/", {"username": "mallory", "password1": NEW_PASSWORD,
                                                 "password2": NEW_PASSWORD})
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert response.status_code == 200


def test_T33_login_logout_and_password_change_are_audited(client, user):
    login(client, user.username, "wrong-password-xx")
    login(client, user.username)
    client.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    client.post("/accounts/logout/")
    assert actions() == ["login.failed", "login.success", "password.changed", "logout"]
    success = AuditEvent.objects.get(action="login.success")
    assert success.actor == "alice" and success.ip == "127.0.0.1" and success.auth_method == "password"


def test_T33_refusal_with_a_nul_in_the_name_is_still_audited(client, user):
    for _ in range(5):
        login(client, user.username, "wrong-password-xx", **ATTACKER)
    response = login(client, "evil\x00name", **ATTACKER)
    assert response.status_code == 429
    refused = AuditEvent.objects.get(action="login.refused")
    assert refused.target == "evil\ufffdname" and refused.details["username"] == "evil\ufffdname"
