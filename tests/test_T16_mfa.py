"""Two-factor authentication (T16, T09): enrolment, the second step of a login, the per-role requirement
enforced on every route, re-authentication for changes, an administrator's reset, secrets at rest."""

from __future__ import annotations

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import Group
from django.test import Client

from bastion.access import roles
from bastion.access.models import RoleOptions
from bastion.audit.models import AuditEvent
from bastion.connections.crypto import decrypt_secret
from tests.conftest import MFA_STEP, STRONG_PASSWORD, TOTP_SECRET, HttpsClient, enrol_mfa, login, recovery_code
from tests.urlwalk import all_url_paths

pytestmark = pytest.mark.django_db

ACTIVATE = "/accounts/2fa/totp/activate/"
DEACTIVATE = "/accounts/2fa/totp/deactivate/"
QR = "/accounts/2fa/totp/qr.svg"
REAUTHENTICATE = "/accounts/reauthenticate/"


def password_step(client: Client, username: str, password: str = STRONG_PASSWORD):
    return client.post("/accounts/login/", {"login": username, "password": password})


def fresh_code(secret: str = TOTP_SECRET) -> str:
    return pyotp.TOTP(secret).now()


def enrol_through_pages(client: Client) -> str:
    """Enrol an authenticator app as a user does: open the page, read the secret, type a code."""
    page = client.get(ACTIVATE)
    if page.status_code == 302 and page["Location"].startswith(REAUTHENTICATE):  # allauth: password again first
        assert client.post(page["Location"], {"password": STRONG_PASSWORD}).status_code == 302
        page = client.get(ACTIVATE)
    assert page.status_code == 200, page.status_code
    secret = page.context["form"].secret
    response = client.post(ACTIVATE, {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, response.content[:400]
    return secret


def signed_in_username(client: Client) -> str | None:
    response = client.get("/")
    user = response.context["user"] if response.context else None
    return user.get_username() if user is not None and user.is_authenticated else None


def test_T16_enrol_then_login_needs_the_code(client, user, django_capture_on_commit_callbacks):
    login(client, user.username)
    with django_capture_on_commit_callbacks(execute=True):
        secret = enrol_through_pages(client)
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action="mfa.added", target=user.username).count() == 1  # codes come with it

    fresh = HttpsClient()
    response = password_step(fresh, user.username)
    assert response.status_code == 302 and response["Location"] == MFA_STEP
    assert signed_in_username(fresh) is None  # the password alone signs nobody in
    assert fresh.get("/db/1/").status_code == 302

    wrong = fresh.post(MFA_STEP, {"code": "000000" if fresh_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200 and b"Incorrect code" in wrong.content
    assert AuditEvent.objects.filter(action="mfa.failed", target=user.username).exists()

    response = fresh.post(MFA_STEP, {"code": fresh_code(secret)})
    assert response.status_code == 302, response.content[:400]
    assert signed_in_username(fresh) == user.username


def test_T16_a_code_is_accepted_once(client, user):
    enrol_mfa(user)
    password_step(client, user.username)
    code = fresh_code()
    assert client.post(MFA_STEP, {"code": code}).status_code == 302
    other = HttpsClient()
    password_step(other, user.username)
    replay = other.post(MFA_STEP, {"code": code})
    assert replay.status_code == 200 and signed_in_username(other) is None


def test_T16_a_recovery_code_signs_in_once(client, user):
    enrol_mfa(user)
    code = recovery_code(user.username)
    password_step(client, user.username)
    assert client.post(MFA_STEP, {"code": code}).status_code == 302
    other = HttpsClient()
    password_step(other, user.username)
    assert other.post(MFA_STEP, {"code": code}).status_code == 200
    assert signed_in_username(other) is None


def test_T09_session_key_rotates_when_the_second_factor_completes(client, user):
    enrol_mfa(user)
    client.get("/accounts/login/")
    password_step(client, user.username)
    key_between_steps = client.session.session_key
    assert key_between_steps
    client.post(MFA_STEP, {"code": fresh_code()})
    assert signed_in_username(client) == user.username
    assert client.session.session_key != key_between_steps


# --- the per-role requirement, enforced on every route ---------------------------------


@pytest.fixture
def unenrolled_admin(make_user):
    """A member of the Admin role (which requires MFA by default) who has not enrolled yet."""
    person = make_user("newadmin", is_staff=False)
    person.groups.add(Group.objects.get(name=roles.ADMIN))
    return person


def test_T16_admin_role_requires_mfa_by_default():
    assert RoleOptions.objects.get(role__name=roles.ADMIN).require_mfa
    assert not RoleOptions.objects.get(role__name=roles.VIEWER).require_mfa


ENROLMENT_PATHS = {"/accounts/2fa/", ACTIVATE, QR, "/accounts/2fa/webauthn/add/", "/accounts/2fa/reauthenticate/",
                   "/accounts/2fa/webauthn/reauthenticate/", "/accounts/reauthenticate/", "/accounts/logout/",
                   "/accounts/password/change/", "/csp-report/"}


def test_T16_required_mfa_is_enforced_on_every_route(client, unenrolled_admin):
    """A password-only session of a member of a role that requires MFA reaches only the enrolment pages."""
    response = login(client, unenrolled_admin.username)
    assert response.status_code == 302
    leaks = []
    for _name, path in all_url_paths():
        if path in ENROLMENT_PATHS:
            continue
        got = client.get(path)
        if not (got.status_code == 302 and got["Location"] == "/accounts/2fa/"):
            leaks.append(f"GET {path}: {got.status_code} {got.get('Location', '')}")
        posted = client.post(path)
        if posted.status_code != 403:
            leaks.append(f"POST {path}: {posted.status_code}")
    assert leaks == []
    assert signed_in_username(HttpsClient()) is None


def test_T16_enrolling_opens_the_way(client, unenrolled_admin):
    login(client, unenrolled_admin.username)
    assert client.get("/admin/users/")["Location"] == "/accounts/2fa/"
    enrol_through_pages(client)
    assert client.get("/admin/users/").status_code == 200


def test_T16_a_required_last_factor_cannot_be_removed(client, admin):
    login(client, admin.username)
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    response = client.post(DEACTIVATE)
    assert response.status_code == 200 and b"cannot" in response.content.lower()
    assert Authenticator.objects.filter(user=admin, type=Authenticator.Type.TOTP).exists()


def test_T16_role_requirement_is_changed_by_a_manager_and_audited(client, admin):
    viewer = Group.objects.get(name=roles.VIEWER)
    login(client, admin.username)
    response = client.post(f"/admin/roles/{viewer.pk}/mfa/", {"require_mfa": "on"})
    assert response.status_code == 302
    assert RoleOptions.objects.get(role=viewer).require_mfa
    event = AuditEvent.objects.get(action="role.mfa_requirement_updated")
    assert event.before == {"require_mfa": False} and event.after == {"require_mfa": True}
    client.post(f"/admin/roles/{viewer.pk}/mfa/", {})
    assert not RoleOptions.objects.get(role=viewer).require_mfa


def test_T16_a_viewer_cannot_change_a_role_requirement(client, make_user):
    viewer_user = make_user("val")
    viewer_user.groups.add(Group.objects.get(name=roles.VIEWER))
    admin_role = Group.objects.get(name=roles.ADMIN)
    login(client, "val")
    assert client.post(f"/admin/roles/{admin_role.pk}/mfa/", {}).status_code == 403
    assert RoleOptions.objects.get(role=admin_role).require_mfa


# --- changes need recent re-authentication -------------------------------------------------


def test_T16_disabling_mfa_without_recent_reauthentication_is_refused(client, user, settings):
    enrol_mfa(user)
    password_step(client, user.username)
    client.post(MFA_STEP, {"code": recovery_code(user.username)})
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 0  # the sign-in is no longer recent
    response = client.post(DEACTIVATE)
    assert response.status_code == 302 and response["Location"].startswith(REAUTHENTICATE)
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert not AuditEvent.objects.filter(action="mfa.removed").exists()


def test_T16_disabling_mfa_after_reauthentication_works_and_is_audited(client, user,
                                                                      django_capture_on_commit_callbacks):
    enrol_mfa(user)
    password_step(client, user.username)
    client.post(MFA_STEP, {"code": recovery_code(user.username)})
    response = client.post(DEACTIVATE)
    assert response["Location"].startswith(REAUTHENTICATE)
    with django_capture_on_commit_callbacks(execute=True):
        # allauth resumes the suspended request once the password is confirmed
        assert client.post(response["Location"], {"password": STRONG_PASSWORD}).status_code == 302
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action="mfa.removed", target=user.username).exists()


# --- an administrator's reset ---------------------------------------------------------------


def test_T16_admin_resets_a_users_mfa(client, admin, make_user, mailoutbox):
    user = make_user("lost-phone", email="lost@example.org")
    enrol_mfa(user)
    victim = HttpsClient()
    login(victim, user.username)
    assert signed_in_username(victim) == user.username
    login(client, admin.username)
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})  # a reset needs a fresh confirmation
    response = client.post(f"/admin/users/{user.pk}/mfa/reset/")
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=user).exists()
    assert signed_in_username(victim) is None  # their sessions ended
    event = AuditEvent.objects.get(action="mfa.reset")
    assert event.target == user.username and event.actor == admin.username
    assert [m.to for m in mailoutbox] == [["lost@example.org"]]
    assert "reset" in mailoutbox[0].subject


def test_T16_only_a_manager_resets_mfa(client, user, make_user):
    enrol_mfa(user)
    make_user("mallory")
    login(client, "mallory")
    assert client.post(f"/admin/users/{user.pk}/mfa/reset/").status_code == 403
    assert Authenticator.objects.filter(user=user).count() == 2


# --- the QR code and the secret ------------------------------------------------------------


def test_T16_qr_code_is_a_same_origin_image_of_the_enrolment_secret(client, user):
    login(client, user.username)
    assert client.get(QR).status_code == 404  # no enrolment under way
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    page = client.get(ACTIVATE)
    assert f'src="{QR}"'.encode() in page.content and b"data:image" not in page.content
    image = client.get(QR)
    assert image.status_code == 200 and image["Content-Type"] == "image/svg+xml"
    assert image.content.lstrip().startswith(b"<?xml") or b"<svg" in image.content[:300]
    assert "no-store" in image["Cache-Control"] or "max-age=0" in image["Cache-Control"]


def test_T30_totp_secret_is_encrypted_at_rest_and_rotated_with_the_keys(user, settings):
    from cryptography.fernet import Fernet

    from bastion.connections.crypto import rotate_all

    enrol_mfa(user)
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert TOTP_SECRET not in stored and decrypt_secret(stored) == TOTP_SECRET
    new_key = Fernet.generate_key().decode()
    rotate_all(keys=[new_key, *settings.ENCRYPTION_KEYS])
    settings.ENCRYPTION_KEYS = [new_key]
    rotated = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert rotated != stored and decrypt_secret(rotated) == TOTP_SECRET
    seed = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).data["seed"]
    decrypt_secret(seed)  # opens with the new key alone


def test_T40_check_says_when_admins_need_no_second_factor():
    from bastion.web.checks import check_admin_mfa

    assert check_admin_mfa(None) == []
    RoleOptions.objects.filter(role__name=roles.ADMIN).update(require_mfa=False)
    problems = check_admin_mfa(None)
    assert [p.id for p in problems] == ["bastion.E022"] and "two-factor" in problems[0].msg


def test_T16_changing_the_password_needs_the_current_one(client, user):
    login(client, user.username)
    new = "another-Strong-passphrase-7"
    refused = client.post("/accounts/password/change/", {"oldpassword": "not-my-password-1",
                                                          "password1": new, "password2": new})
    assert refused.status_code == 200
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
