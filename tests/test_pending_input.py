"""Work survives an expired session (T10): a form's input kept across the new login.

bastion.accounts.pending.keeps_input, with SessionTimeoutMiddleware letting an
expired POST go on as anonymous. The views are in tests/urls_pending.py.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from bastion.access.decorators import SIGNED_IN, declared_permission, public
from bastion.accounts.middleware import SEEN
from bastion.accounts.models import PendingInput
from bastion.accounts.pending import MAX_FIELDS, cookie_name, keeps_input
from bastion.audit.models import AuditEvent
from tests.conftest import STRONG_PASSWORD, HttpsClient, login

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_pending")]

FORM = "/pending-test/form/?table=people&k=row%2F7"
COOKIE = "__Host-bastion_pending"
INPUT = {"name": ["Zoë Secretvalue"], "tags": ["a", "b"], "note": [""]}


def _expire(client, settings) -> None:
    session = client.session
    session[SEEN] = int(time.time()) - settings.SESSION_IDLE_TIMEOUT - 5
    session.save()


def _post_expired(client, settings, data=None, **extra):
    _expire(client, settings)
    return client.post(FORM, {**INPUT, "csrfmiddlewaretoken": "not-kept"} if data is None else data, **extra)


def _resumed(client, path=FORM):
    response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    return response.json()["resumed"]


def _login_next(client, username, path=FORM):
    response = client.post("/accounts/login/", {"login": username, "password": STRONG_PASSWORD, "next": path})
    assert response.status_code == 302, response.content[:300]
    return response


def test_expired_post_goes_to_login_with_only_next_in_the_url(logged_in, user, settings):
    response = _post_expired(logged_in, settings)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=" + quote(FORM, safe="/")
    morsel = response.cookies[COOKIE]
    key = morsel.value
    assert len(key) >= 40 and key not in response["Location"]
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Lax"
    assert morsel["path"] == "/" and int(morsel["max-age"]) == 30 * 60
    assert logged_in.get("/pending-test/form/").status_code == 302  # signed out
    pending = PendingInput.objects.get()
    assert pending.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert pending.owner == user and pending.path == FORM
    assert timedelta(minutes=29) < pending.expires_at - timezone.now() <= timedelta(minutes=30)


def test_after_signing_in_again_the_form_gets_the_input_once(logged_in, user, settings):
    _post_expired(logged_in, settings)
    assert _login_next(logged_in, user.username)["Location"] == FORM  # back on the form
    assert _resumed(logged_in) == INPUT  # the CSRF token is not kept
    assert COOKIE not in logged_in.cookies or logged_in.cookies[COOKIE].value == ""
    assert not PendingInput.objects.exists()
    assert _resumed(logged_in) is None  # single use


def test_single_use_even_if_the_cookie_is_replayed(logged_in, user, settings):
    _post_expired(logged_in, settings)
    key = logged_in.cookies[COOKIE].value
    login(logged_in, user.username)
    assert _resumed(logged_in) == INPUT
    logged_in.cookies[COOKIE] = key
    assert _resumed(logged_in) is None


def test_another_user_on_the_same_browser_does_not_get_it(logged_in, make_user, settings):
    make_user("bob")
    _post_expired(logged_in, settings)
    login(logged_in, "bob")
    assert _resumed(logged_in) is None
    assert not PendingInput.objects.exists()  # gone, whatever the outcome


def test_an_expired_stash_is_not_returned(logged_in, user, settings):
    _post_expired(logged_in, settings)
    PendingInput.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    login(logged_in, user.username)
    assert _resumed(logged_in) is None
    assert not PendingInput.objects.exists()


def test_expired_stashes_are_removed_opportunistically(logged_in, user, make_user, settings):
    bob = make_user("bob")
    PendingInput.objects.create(key_hash="0" * 64, owner=bob, path=FORM, data="x",
                                expires_at=timezone.now() - timedelta(minutes=1))
    _post_expired(logged_in, settings)
    assert list(PendingInput.objects.values_list("owner", flat=True)) == [user.pk]


def test_a_different_path_does_not_get_it(logged_in, user, settings):
    _post_expired(logged_in, settings)
    login(logged_in, user.username)
    assert _resumed(logged_in, "/pending-test/form/?table=people&k=row%2F8") is None
    assert not PendingInput.objects.exists()
    assert _resumed(logged_in) is None


def test_the_input_is_encrypted_at_rest(logged_in, settings):
    _post_expired(logged_in, settings)
    key = logged_in.cookies[COOKIE].value
    stored = PendingInput.objects.values_list("key_hash", "data").get()
    for column in stored:
        assert "Secretvalue" not in column and key not in column


def test_one_audit_event_names_the_path_and_owner_never_the_input(logged_in, user, settings):
    _post_expired(logged_in, settings)
    event = AuditEvent.objects.get(action="session.input_kept")
    assert event.actor == "" and event.target == FORM  # an anonymous request
    assert event.details["owner"] == user.username and event.details["path"] == FORM
    assert "Secretvalue" not in str(event.details)
    assert AuditEvent.objects.get(action="session.expired").details == {"reason": "idle"}


def test_a_post_without_any_session_is_not_kept(client, user):
    response = client.post(FORM, INPUT)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert not PendingInput.objects.exists() and COOKIE not in response.cookies
    login(client, user.username)
    assert _resumed(client) is None  # whoever signs in next on this browser does not get it


def test_an_anonymous_get_leaves_the_stash_alone(logged_in, user, settings):
    _post_expired(logged_in, settings)
    assert logged_in.get(FORM).status_code == 302  # to the login page
    assert PendingInput.objects.count() == 1
    login(logged_in, user.username)
    assert _resumed(logged_in) == INPUT


def test_a_signed_in_post_is_not_stashed(logged_in):
    response = logged_in.post(FORM, INPUT)
    assert response.status_code == 200 and response.json()["saved"] == INPUT
    assert not PendingInput.objects.exists()
    assert COOKIE not in response.cookies


def test_too_many_fields_are_not_kept(logged_in, user, settings):
    response = _post_expired(logged_in, settings, {f"f{i}": "x" for i in range(MAX_FIELDS + 1)})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert COOKIE not in response.cookies and not PendingInput.objects.exists()
    assert not AuditEvent.objects.filter(action="session.input_kept").exists()


def test_over_a_megabyte_is_not_kept(logged_in, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 3_000_000
    response = _post_expired(logged_in, settings, {"big": "x" * 1_000_001})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert COOKIE not in response.cookies and not PendingInput.objects.exists()


def test_a_newer_stash_replaces_the_browsers_older_one(logged_in, user, settings):
    _post_expired(logged_in, settings, {"name": "first"})
    login(logged_in, user.username)
    _post_expired(logged_in, settings, {"name": "second"})
    assert PendingInput.objects.count() == 1
    login(logged_in, user.username)
    assert _resumed(logged_in) == {"name": ["second"]}


def test_dev_mode_cookie_is_not_host_prefixed_nor_secure(logged_in, settings):
    settings.DEV = True
    assert cookie_name() == "bastion_pending"
    response = _post_expired(logged_in, settings)
    assert not response.cookies["bastion_pending"]["secure"]


def test_the_decorator_keeps_the_permission_declaration():
    from tests.urls_pending import form

    assert declared_permission(form) == SIGNED_IN


def test_the_decorator_refuses_a_view_without_sign_in():
    def view(request):
        raise AssertionError

    with pytest.raises(ImproperlyConfigured):
        keeps_input(view)  # no declaration, or below the permission decorator
    with pytest.raises(ImproperlyConfigured):
        keeps_input(public(view))


# --- CSRF still guards the expired POST ---------------------------------------------------------
def _csrf_client(username: str) -> HttpsClient:
    client = HttpsClient(enforce_csrf_checks=True)
    client.get("/accounts/login/")
    token = client.cookies["__Host-bastion_csrf"].value
    response = client.post("/accounts/login/", {"login": username, "password": STRONG_PASSWORD,
                                                "csrfmiddlewaretoken": token},
                           headers={"Origin": "https://testserver"})
    assert response.status_code == 302, response.content[:300]
    return client


def test_csrf_is_enforced_on_the_expired_post(user, settings):
    client = _csrf_client(user.username)
    _expire(client, settings)
    response = client.post(FORM, INPUT, headers={"Origin": "https://testserver"})
    assert response.status_code == 403
    assert not PendingInput.objects.exists() and COOKIE not in response.cookies


def test_the_csrf_token_survives_the_expiry_logout(user, settings):
    client = _csrf_client(user.username)
    _expire(client, settings)
    token = client.cookies["__Host-bastion_csrf"].value
    response = client.post(FORM, {**INPUT, "csrfmiddlewaretoken": token}, headers={"Origin": "https://testserver"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert PendingInput.objects.get().owner == user


# --- SessionTimeoutMiddleware on POST -------------------------------------------------------
def test_expired_post_to_any_other_view_goes_to_login(logged_in, settings):
    _expire(logged_in, settings)
    old_session = logged_in.session.session_key
    response = logged_in.post("/pending-test/plain/", INPUT)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/pending-test/plain/"
    assert not SessionStore().exists(old_session)
    assert AuditEvent.objects.get(action="session.expired").details == {"reason": "idle"}
    assert not PendingInput.objects.exists()
    assert logged_in.get("/pending-test/form/").status_code == 302  # still signed out


def test_expired_get_is_redirected_at_once(logged_in, settings):
    _expire(logged_in, settings)
    response = logged_in.get(FORM)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert COOKIE not in response.cookies and not PendingInput.objects.exists()
