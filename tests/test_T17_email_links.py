"""E-mailed links: invitations, self-registration activation, password reset (T15, T17, T18, T33).

Links are read from the e-mail outbox: pytest-django's locmem ``mailoutbox``, or the files the
file-based backend writes when no SMTP server is configured. Expiry is real: the token is minted
with the signer's clock set back, or the reset token generator's clock set forward.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.core import signing

from bastion import config
from bastion.accounts import links
from bastion.audit.models import AuditEvent
from tests.conftest import STRONG_PASSWORD, HttpsClient, login

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "another-Strong-passw0rd"
INVALID_INVITATION = "This invitation link is not valid any more; ask your administrator for a new one."
SITE = "https://127.0.0.1:8443"



def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))


def link_in(body: str) -> str:
    """The link on a line of its own in the e-mail body."""
    return re.search(r"^https://\S+$", body, re.MULTILINE).group(0)


def path_of(link: str) -> str:
    assert link.startswith(SITE + "/"), link
    return link.removeprefix(SITE)


def without_csrf(response) -> str:
    """The body without its CSRF token and request id, which differ on every response."""
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return re.sub(r"<code>[0-9a-f]{32}</code>", "", body)


def invite(admin_client, mailoutbox, username: str = "ivy", **extra) -> str:
    response = admin_client.post("/admin/users/invite/", {"username": username, "email": f"{username}@example.com",
                                                          **extra}, HTTP_HOST="localhost")
    assert response.status_code == 200, response.content.decode()[:800]
    assert mailoutbox[-1].to == [f"{username}@example.com"]
    return path_of(link_in(mailoutbox[-1].body))


def accept(path: str, password: str = NEW_PASSWORD, client: HttpsClient | None = None):
    client = client or HttpsClient()
    return client.post(path, {"new_password1": password, "new_password2": password})


@pytest.fixture
def signer_clock(monkeypatch):
    """Mint signed tokens as if ``days`` ago: django.core.signing's clock only, nothing else's."""
    def set_back(days: float) -> None:
        monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: time.time() - days * 86400))
    yield set_back
    monkeypatch.undo()


# --- invitations ------------------------------------------------------------------------------------
def test_T17_invitation_end_to_end_link_from_site_url_sets_password_and_signs_in(admin_client, mailoutbox):
    viewer = Group.objects.get(name="Viewer")
    path = invite(admin_client, mailoutbox, roles=[viewer.pk])  # asked for on Host "localhost": link names SITE_URL
    ivy = User.objects.get(username="ivy")
    assert not ivy.is_active and not ivy.has_usable_password() and list(ivy.groups.all()) == [viewer]
    assert login(HttpsClient(), "ivy", NEW_PASSWORD).status_code == 200  # nobody signs in before accepting

    invitee = HttpsClient()
    assert invitee.get(path).status_code == 200
    weak = accept(path, "short", invitee)
    assert weak.status_code == 400 and "too short" in weak.content.decode()  # password policy applies
    before = invitee.session.session_key
    done = accept(path, NEW_PASSWORD, invitee)
    assert done.status_code == 302 and done["Location"] == "/"
    assert invitee.session["_auth_user_id"] == str(ivy.pk)
    assert invitee.session.session_key != before and not SessionStore().exists(before)  # T09
    ivy.refresh_from_db()
    assert ivy.is_active and ivy.check_password(NEW_PASSWORD) and ivy.password.startswith("argon2$argon2id$")
    assert actions().count("invitation.sent") == 1 and actions().count("invitation.accepted") == 1
    sent = AuditEvent.objects.get(action="invitation.sent")
    assert sent.after == {"username": "ivy", "email": "ivy@example.com", "roles": ["Viewer"]}


def test_T17_used_invitation_link_is_refused(admin_client, mailoutbox):
    path = invite(admin_client, mailoutbox)
    assert accept(path).status_code == 302
    again = HttpsClient().get(path)
    assert again.status_code == 400 and INVALID_INVITATION in again.content.decode()
    assert accept(path, "yet-another-Passw0rd!").status_code == 400
    assert User.objects.get(username="ivy").check_password(NEW_PASSWORD)


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_T17_tampered_invitation_link_is_refused(admin_client, mailoutbox, part):
    path = invite(admin_client, mailoutbox)
    token = path.split("/")[-2]
    payload, stamp, signature = token.rsplit(":", 2)
    if part == "payload":
        data = signing.b64_decode(payload.encode())
        payload = signing.b64_encode(data.replace(b'"user":', b'"user": ')).decode()
    else:
        signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    tampered = path.replace(token, f"{payload}:{stamp}:{signature}")
    used = HttpsClient().get(tampered)
    assert used.status_code == 400 and INVALID_INVITATION in used.content.decode()
    assert accept(tampered).status_code == 400
    assert not User.objects.get(username="ivy").is_active


def test_T17_expired_invitation_link_is_refused(admin_client, mailoutbox, signer_clock, settings):
    invite(admin_client, mailoutbox)
    ivy = User.objects.get(username="ivy")
    signer_clock(settings.INVITATION_SECONDS / 86400 + 0.01)
    expired = path_of(links.make_url(ivy, links.INVITATION))
    signer_clock(settings.INVITATION_SECONDS / 86400 - 0.01)
    nearly = path_of(links.make_url(ivy, links.INVITATION))
    signer_clock(0)
    page = HttpsClient().get(expired)
    assert page.status_code == 400 and INVALID_INVITATION in page.content.decode()
    assert accept(expired).status_code == 400
    assert HttpsClient().get(nearly).status_code == 200  # the control: the same link within the limit works


def test_T17_invalid_links_all_get_the_same_page(admin_client, mailoutbox):
    used_path = invite(admin_client, mailoutbox, "one")
    accept(used_path)
    bodies = {without_csrf(HttpsClient().get(p)) for p in
              [used_path, used_path[:-5] + "AAAA/", "/accounts/invitation/not-a-token/"]}
    assert len(bodies) == 1


def test_T17_resend_gives_new_link_and_voids_the_old_one(admin_client, mailoutbox):
    old = invite(admin_client, mailoutbox)
    ivy = User.objects.get(username="ivy")
    response = admin_client.post(f"/admin/users/{ivy.pk}/invitation/resend/")
    assert response.status_code == 302
    new = path_of(link_in(mailoutbox[-1].body))
    assert new != old
    assert HttpsClient().get(old).status_code == 400
    assert accept(new).status_code == 302
    assert actions().count("invitation.sent") == 2


def test_T17_revoked_invitation_link_is_refused(admin_client, mailoutbox):
    path = invite(admin_client, mailoutbox)
    ivy = User.objects.get(username="ivy")
    count = AuditEvent.objects.count()
    assert admin_client.post(f"/admin/users/{ivy.pk}/invitation/revoke/").status_code == 302
    assert AuditEvent.objects.count() == count + 1 and actions()[-1] == "invitation.revoked"
    assert not User.objects.filter(username="ivy").exists()
    assert HttpsClient().get(path).status_code == 400


def test_accepted_or_ordinary_users_have_no_invitation_to_resend_or_revoke(admin_client, user):
    response = admin_client.post(f"/admin/users/{user.pk}/invitation/revoke/", follow=True)
    assert "This user has no open invitation." in response.content.decode()
    assert User.objects.filter(pk=user.pk).exists()


def test_T17_invitation_token_is_no_activation_token(admin_client, mailoutbox):
    path = invite(admin_client, mailoutbox)
    assert HttpsClient().get(path.replace("/invitation/", "/activate/")).status_code == 400


def test_T20_only_user_managers_invite(logged_in, mailoutbox):
    assert logged_in.get("/admin/users/invite/").status_code == 403
    assert logged_in.post("/admin/users/invite/", {"username": "x", "email": "x@example.com"}).status_code == 403
    assert not User.objects.filter(username="x").exists() and not mailoutbox


def test_invitation_needs_an_email_and_a_free_name(admin_client, user, mailoutbox):
    assert admin_client.post("/admin/users/invite/", {"username": "nomail"}).status_code == 400
    taken = admin_client.post("/admin/users/invite/", {"username": "ALICE", "email": "a@example.com"})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    assert not mailoutbox


def test_failed_send_leaves_no_account_and_says_why(admin_client, settings, unused_port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", unused_port, 2
    response = admin_client.post("/admin/users/invite/", {"username": "ivy", "email": "ivy@example.com"})
    assert response.status_code == 400 and "could not be sent" in response.content.decode()
    assert not User.objects.filter(username="ivy").exists() and "invitation.sent" not in actions()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_smtp_mail_is_a_file_in_the_mail_dir_and_the_ui_says_where(admin_client, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    response = admin_client.post("/admin/users/invite/", {"username": "ivy", "email": "ivy@example.com"})
    note = f"E-mail is not configured: messages are written to <code>{tmp_path}</code>"
    assert note in response.content.decode()
    assert note in admin_client.get("/admin/users/").content.decode()
    ivy = User.objects.get(username="ivy")
    assert note in admin_client.get(f"/admin/users/{ivy.pk}/").content.decode()
    [written] = list(tmp_path.iterdir())
    assert accept(path_of(link_in(written.read_text()))).status_code == 302


def test_with_smtp_the_ui_has_no_file_note(admin_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert "E-mail is not configured" not in admin_client.get("/admin/users/").content.decode()


def test_T17_invitation_link_stays_void_after_admin_activates_then_deactivates(admin_client, mailoutbox):
    path = invite(admin_client, mailoutbox)
    ivy = User.objects.get(username="ivy")
    assert admin_client.post(f"/admin/users/{ivy.pk}/active/", {"active": "1"}).status_code == 302
    assert admin_client.post(f"/admin/users/{ivy.pk}/active/", {"active": "0"}).status_code == 302
    assert HttpsClient().get(path).status_code == 400 and accept(path).status_code == 400
    ivy.refresh_from_db()
    assert not ivy.is_active and not ivy.has_usable_password()


def test_T17_invitation_sign_in_is_audited_as_the_link(admin_client, mailoutbox):
    assert accept(invite(admin_client, mailoutbox)).status_code == 302
    event = AuditEvent.objects.filter(action="login.success").latest("seq")
    assert (event.target, event.auth_method) == ("ivy", "invitation_link")


# --- self-registration ----------------------------------------------------------------------------------
def register(client: HttpsClient, username: str = "sam"):
    return client.post("/accounts/signup/", {"username": username, "email": f"{username}@example.com",
                                             "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})


def test_self_registration_is_off_by_default(client, settings, mailoutbox):
    assert settings.SELF_REGISTRATION is False
    register(client)
    assert not User.objects.filter(username="sam").exists() and not mailoutbox


def test_T17_self_registration_creates_inactive_account_activated_by_link(client, settings, mailoutbox):
    settings.SELF_REGISTRATION = True
    response = register(client)
    assert response.status_code == 302 and response["Location"] == "/accounts/inactive/"
    sam = User.objects.get(username="sam")
    assert not sam.is_active and not sam.groups.exists() and "_auth_user_id" not in client.session
    assert login(HttpsClient(), "sam", NEW_PASSWORD)["Location"] == "/accounts/inactive/"  # not signed in
    path = path_of(link_in(mailoutbox[-1].body))
    assert path.startswith("/accounts/activate/")

    visitor = HttpsClient()
    assert visitor.get(path).status_code == 200
    sam.refresh_from_db()
    assert not sam.is_active  # GET changes nothing: link scanners cannot activate
    assert visitor.post(path)["Location"] == "/"
    sam.refresh_from_db()
    assert sam.is_active and not sam.groups.exists()  # no role, so no data, until an admin assigns one
    assert visitor.get("/").status_code == 200
    assert HttpsClient().get(path).status_code == 400  # single use
    assert HttpsClient().post(path).status_code == 400
    assert actions().count("user.registered") == 1 and actions().count("user.activated_by_link") == 1


@pytest.mark.parametrize("how", ["tampered", "expired"])
def test_T17_bad_activation_link_is_refused(client, settings, mailoutbox, signer_clock, how):
    settings.SELF_REGISTRATION = True
    register(client)
    sam = User.objects.get(username="sam")
    if how == "expired":
        signer_clock(settings.INVITATION_SECONDS / 86400 + 0.01)
        path = path_of(links.make_url(sam, links.ACTIVATION))
        signer_clock(0)
    else:
        path = path_of(link_in(mailoutbox[-1].body))
        path = path[:-3] + ("x" if path[-3] != "x" else "y") + path[-2:]
    assert HttpsClient().post(path).status_code == 400
    sam.refresh_from_db()
    assert not sam.is_active


def test_deactivated_user_is_not_reactivated_by_an_old_activation_link(client, settings, mailoutbox, admin_client):
    settings.SELF_REGISTRATION = True
    register(client)
    path = path_of(link_in(mailoutbox[-1].body))
    HttpsClient().post(path)
    sam = User.objects.get(username="sam")
    assert admin_client.post(f"/admin/users/{sam.pk}/active/", {"active": "0"}).status_code == 302
    assert HttpsClient().post(path).status_code == 400
    sam.refresh_from_db()
    assert not sam.is_active


def test_T17_activation_link_stays_void_after_admin_activates_then_deactivates(client, settings, mailoutbox,
                                                                                admin_client):
    settings.SELF_REGISTRATION = True
    register(client)
    path = path_of(link_in(mailoutbox[-1].body))
    sam = User.objects.get(username="sam")
    assert admin_client.post(f"/admin/users/{sam.pk}/active/", {"active": "1"}).status_code == 302
    assert admin_client.post(f"/admin/users/{sam.pk}/active/", {"active": "0"}).status_code == 302  # blocked
    visitor = HttpsClient()
    assert visitor.post(path).status_code == 400 and "_auth_user_id" not in visitor.session
    sam.refresh_from_db()
    assert not sam.is_active


def test_T17_activation_sign_in_is_audited_as_the_link(client, settings, mailoutbox):
    settings.SELF_REGISTRATION = True
    register(client)
    assert HttpsClient().post(path_of(link_in(mailoutbox[-1].body))).status_code == 302
    event = AuditEvent.objects.filter(action="login.success").latest("seq")
    assert (event.target, event.auth_method) == ("sam", "activation_link")


def test_T15_signup_with_a_taken_email_answers_like_a_new_one(settings, make_user, mailoutbox):
    """Only the address is hidden: a taken username still gets allauth's form error (a known limit)."""
    settings.SELF_REGISTRATION = True
    make_user("carol", email="carol@example.com")

    def sign_up(username: str, email: str):
        return HttpsClient().post("/accounts/signup/", {"username": username, "email": email,
                                                        "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    fresh, taken = sign_up("sam", "sam@example.com"), sign_up("sam2", "carol@example.com")
    assert (fresh.status_code, fresh.get("Location")) == (taken.status_code, taken.get("Location"))
    assert taken.status_code == 302 and taken["Location"] == "/accounts/inactive/"
    assert not User.objects.filter(username="sam2").exists()
    note = mailoutbox[-1]
    assert note.to == ["carol@example.com"]
    assert settings.SITE_URL in note.body and "/accounts/activate/" not in note.body
    assert "sam2" not in note.body  # what the stranger typed is not repeated to the owner
    refused = AuditEvent.objects.get(action="user.registration_refused")
    assert (refused.target, refused.details) == ("carol", {"reason": "email_taken"})


# --- password reset -----------------------------------------------------------------------------------
def test_T15_reset_answers_identically_for_known_and_unknown_addresses_and_mails_strangers_nothing(
        make_user, mailoutbox):
    make_user("carol", email="carol@example.com")
    known = HttpsClient().post("/accounts/password/reset/", {"email": "carol@example.com"}, follow=True)
    unknown = HttpsClient().post("/accounts/password/reset/", {"email": "nobody@example.com"}, follow=True)
    assert known.status_code == unknown.status_code == 200
    assert known.redirect_chain == unknown.redirect_chain
    assert without_csrf(known) == without_csrf(unknown)
    assert [m.to for m in mailoutbox] == [["carol@example.com"]]  # no "unknown account" mail to anyone


def test_T17_reset_link_names_site_url_whatever_the_host_header(make_user, mailoutbox, settings):
    make_user("dave", email="dave@example.com")
    HttpsClient().post("/accounts/password/reset/", {"email": "dave@example.com"}, HTTP_HOST="localhost")
    assert link_in(mailoutbox[-1].body).startswith(settings.SITE_URL + "/accounts/password/reset/key/")
    assert "localhost" not in mailoutbox[-1].body + mailoutbox[-1].subject  # the text names Bastion, not the Host
    assert mailoutbox[-1].subject.startswith("[Bastion] ")


def test_T18_reset_request_with_foreign_host_is_refused_and_sends_nothing(make_user, mailoutbox):
    make_user("dave", email="dave@example.com")
    response = HttpsClient().post("/accounts/password/reset/", {"email": "dave@example.com"},
                                  HTTP_HOST="evil.example")
    assert response.status_code == 400 and not mailoutbox


def reset_link(make_user, mailoutbox) -> str:
    make_user("dave", email="dave@example.com")
    HttpsClient().post("/accounts/password/reset/", {"email": "dave@example.com"})
    return path_of(link_in(mailoutbox[-1].body))


def use_reset_link(path: str, client: HttpsClient | None = None, password: str = NEW_PASSWORD):
    client = client or HttpsClient()
    page = client.get(path, follow=True)
    form_path = page.redirect_chain[-1][0] if page.redirect_chain else path
    return page, client.post(form_path, {"password1": password, "password2": password})


def test_T17_reset_link_expires_by_the_clock(make_user, mailoutbox, monkeypatch, settings):
    from allauth.account.forms import default_token_generator

    path = reset_link(make_user, mailoutbox)
    later = datetime.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 60)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later)
    page, done = use_reset_link(path)
    assert page.context["token_fail"] is True and "Link not valid" in page.content.decode()
    assert not User.objects.get(username="dave").check_password(NEW_PASSWORD)
    monkeypatch.setattr(default_token_generator, "_now", lambda: later - timedelta(seconds=120))
    _page, done = use_reset_link(path)  # the control: within the limit, the same link works
    assert done.status_code == 302 and User.objects.get(username="dave").check_password(NEW_PASSWORD)


def test_reset_links_are_short_lived_by_default(settings):
    assert settings.PASSWORD_RESET_TIMEOUT == 3600


def test_T10_reset_by_email_logs_out_other_sessions(make_user, mailoutbox):
    make_user("dave", email="dave@example.com")
    elsewhere = HttpsClient()  # signed in before the reset is asked for: a later sign-in voids the link
    assert login(elsewhere, "dave").status_code == 302 and elsewhere.get("/").status_code == 200
    HttpsClient().post("/accounts/password/reset/", {"email": "dave@example.com"})
    _page, done = use_reset_link(path_of(link_in(mailoutbox[-1].body)))
    assert done.status_code == 302
    assert elsewhere.get("/").status_code == 302  # the session auth hash no longer matches
    assert login(HttpsClient(), "dave", NEW_PASSWORD).status_code == 302
    assert login(HttpsClient(), "dave", STRONG_PASSWORD).status_code == 200


def test_reset_pages_use_bastion_layout(make_user, mailoutbox):
    page = HttpsClient().get("/accounts/password/reset/")
    body = page.content.decode()
    assert page.status_code == 200 and "Reset your password" in body and "/static/bastion/bastion.css" in body
    path = reset_link(make_user, mailoutbox)
    form, _ = use_reset_link(path, password="short")
    assert "Choose a new password" in form.content.decode()


def test_T15_reset_with_smtp_down_answers_like_an_unknown_address(make_user, settings, unused_port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", unused_port, 2
    make_user("carol", email="carol@example.com")

    def reset(email: str):
        return HttpsClient(raise_request_exception=False).post("/accounts/password/reset/", {"email": email})
    known, unknown = reset("carol@example.com"), reset("x@example.com")
    assert (known.status_code, known.get("Location")) == (unknown.status_code, unknown.get("Location")) \
        == (302, "/accounts/password/reset/done/")
    failed = AuditEvent.objects.get(action="password.reset_mail_failed")
    assert failed.target == "carol" and failed.outcome == "failure"


# --- e-mail settings -------------------------------------------------------------------------------------
def connection_in_fresh_process(tmp_path: Path, **env: str) -> dict:
    """The e-mail connection Django builds from bastion.settings for these BASTION_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    clean.update(DJANGO_SETTINGS_MODULE="bastion.settings", BASTION_DATA_DIR=str(tmp_path), **env)
    code = ("import json; from django.conf import settings; from django.core.mail import get_connection; "
            "c = get_connection(); print(json.dumps({'backend': type(c).__module__, "
            "'from': settings.DEFAULT_FROM_EMAIL, **{k: getattr(c, k, None) for k in "
            "['host', 'port', 'use_tls', 'use_ssl', 'username', 'password', 'timeout', 'file_path']}}))")
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_without_email_host_mail_goes_to_files_in_the_data_dir(tmp_path):
    got = connection_in_fresh_process(tmp_path)
    assert got["backend"] == "django.core.mail.backends.filebased"
    assert got["file_path"] == str(tmp_path.resolve() / "mail") and got["from"] == "bastion@localhost"


def test_smtp_settings_come_from_environment_and_password_file(tmp_path):
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret-from-file\n")
    got = connection_in_fresh_process(
        tmp_path, BASTION_EMAIL_HOST="smtp.example.org", BASTION_EMAIL_PORT="2525",
        BASTION_EMAIL_HOST_USER="bastion", BASTION_EMAIL_HOST_PASSWORD_FILE=str(secret),
        BASTION_EMAIL_FROM="Bastion <bastion@example.org>")
    assert got == {"backend": "django.core.mail.backends.smtp", "from": "Bastion <bastion@example.org>",
                   "host": "smtp.example.org", "port": 2525, "use_tls": True, "use_ssl": False,
                   "username": "bastion", "password": "s3cret-from-file", "timeout": 10, "file_path": None}


def test_smtp_over_implicit_tls(tmp_path):
    got = connection_in_fresh_process(tmp_path, BASTION_EMAIL_HOST="smtp.example.org", BASTION_EMAIL_PORT="465",
                                      BASTION_EMAIL_USE_TLS="no", BASTION_EMAIL_USE_SSL="yes",
                                      BASTION_EMAIL_TIMEOUT="3")
    assert (got["use_tls"], got["use_ssl"], got["port"], got["timeout"]) == (False, True, 465, 3)


def test_tls_and_ssl_together_are_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="choose one"):
        config.load({"BASTION_DATA_DIR": str(tmp_path), "BASTION_EMAIL_USE_SSL": "yes"})


def test_email_password_is_a_secret_option():
    secret = {opt.name for opt in config.OPTIONS if opt.secret}
    assert "email_host_password" in secret
    assert "`BASTION_EMAIL_HOST_PASSWORD` (or `_FILE`)" in config.markdown_table()
