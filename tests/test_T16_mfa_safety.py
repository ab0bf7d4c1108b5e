"""Regression tests for the security review of two-factor authentication and e-mail addresses (T09, T16, T33).

Each test failed before its control existed (proved by removing the control once).
"""

from __future__ import annotations

import hashlib
import json

import pyotp
import pytest
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn.internal.auth import WebAuthn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from django.contrib.auth.models import Group
from fido2.cose import ES256
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import AttestationObject, AttestedCredentialData, AuthenticatorData, CollectedClientData

from bastion.access import roles
from bastion.audit.models import AuditEvent
from tests.conftest import MFA_STEP, STRONG_PASSWORD, TOTP_SECRET, HttpsClient, enrol_mfa, login
from tests.test_T16_mfa import ACTIVATE, REAUTHENTICATE, signed_in_username

pytestmark = pytest.mark.django_db
RP, ORIGIN = "testserver", "https://testserver"


class SoftKey:
    """A software security key (fido2's data classes, a P-256 key), registered for ``user`` as allauth stores one."""

    def __init__(self, user) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cred_id = b"soft-cred-" + str(user.pk).encode()
        self.handle = user_pk_to_url_str(user).encode()
        flags = AuthenticatorData.FLAG
        attested = AttestedCredentialData.create(b"\0" * 16, self.cred_id,
                                                 ES256.from_cryptography_key(self.key.public_key()))
        data = AuthenticatorData.create(hashlib.sha256(RP.encode()).digest(), flags.UP | flags.UV | flags.AT, 0,
                                        attested)
        client_data = CollectedClientData.create("webauthn.create", b"x" * 32, ORIGIN)
        WebAuthn.add(user, "laptop", {
            "type": "public-key", "id": websafe_encode(self.cred_id), "rawId": websafe_encode(self.cred_id),
            "response": {"clientDataJSON": websafe_encode(bytes(client_data)),
                         "attestationObject": websafe_encode(bytes(AttestationObject.create("none", data, {})))},
            "clientExtensionResults": {"credProps": {"rk": True}}})

    def assertion(self, challenge: str) -> str:
        flags = AuthenticatorData.FLAG
        data = AuthenticatorData.create(hashlib.sha256(RP.encode()).digest(), flags.UP | flags.UV, 1)
        client_data = CollectedClientData.create("webauthn.get", websafe_decode(challenge), ORIGIN)
        signature = self.key.sign(bytes(data) + client_data.hash, ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "type": "public-key", "id": websafe_encode(self.cred_id), "rawId": websafe_encode(self.cred_id),
            "response": {"clientDataJSON": websafe_encode(bytes(client_data)),
                         "authenticatorData": websafe_encode(bytes(data)), "signature": websafe_encode(signature),
                         "userHandle": websafe_encode(self.handle)},
            "clientExtensionResults": {}})


def passkey_login(client, key: SoftKey):
    options = client.get("/accounts/2fa/webauthn/login/", HTTP_X_REQUESTED_WITH="XMLHttpRequest").json()
    challenge = options["request_options"]["publicKey"]["challenge"]
    return client.post("/accounts/2fa/webauthn/login/", {"credential": key.assertion(challenge)})


def test_T16_a_passkey_signs_in_alone(client, user):
    key = SoftKey(user)
    passkey_login(client, key)
    assert signed_in_username(client) == user.username
    assert AuditEvent.objects.filter(action="login.success", auth_method="passkey").exists()


def test_T16_sso_only_mode_refuses_a_passkey_of_a_non_admin(client, make_user, settings):
    analyst = make_user("analyst")
    key = SoftKey(analyst)
    settings.OIDC_ENABLED = True
    settings.OIDC_SSO_ONLY = True
    passkey_login(client, key)
    assert signed_in_username(client) is None
    assert AuditEvent.objects.filter(action="login.refused", target="analyst").exists()


# --- an administrator's reset -------------------------------------------------------------


def test_T16_resetting_another_users_mfa_needs_recent_reauthentication(client, admin, make_user, settings):
    victim = make_user("victim")
    enrol_mfa(victim)
    login(client, admin.username)
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 0
    response = client.post(f"/admin/users/{victim.pk}/mfa/reset/")
    assert response.status_code == 302 and response["Location"].startswith(REAUTHENTICATE)
    assert Authenticator.objects.filter(user=victim).count() == 2
    assert not AuditEvent.objects.filter(action="mfa.reset").exists()


def test_T16_an_admin_cannot_reset_their_own_mfa_through_the_user_page(client, admin):
    login(client, admin.username)
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    assert client.post(f"/admin/users/{admin.pk}/mfa/reset/").status_code == 400
    assert Authenticator.objects.filter(user=admin, type=Authenticator.Type.TOTP).exists()


# --- enrolment ----------------------------------------------------------------------------


def enrol_app(client) -> str:
    page = client.get(ACTIVATE)
    if page.status_code == 302:
        client.post(page["Location"], {"password": STRONG_PASSWORD})
        page = client.get(ACTIVATE)
    return page.context["form"].secret


def test_T09_session_key_rotates_when_enrolment_lifts_the_mfa_hold(client, make_user):
    person = make_user("newadmin")
    person.groups.add(Group.objects.get(name=roles.ADMIN))
    login(client, person.username)
    assert client.get("/admin/users/")["Location"] == "/accounts/2fa/"
    secret = enrol_app(client)
    key = client.session.session_key
    assert client.post(ACTIVATE, {"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert client.get("/admin/users/").status_code == 200
    assert client.session.session_key != key


def test_T33_activating_an_authenticator_app_writes_one_event(client, user, django_capture_on_commit_callbacks):
    login(client, user.username)
    secret = enrol_app(client)
    before = AuditEvent.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(ACTIVATE, {"code": pyotp.TOTP(secret).now()})
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))[before:] == ["mfa.added"]


@pytest.mark.parametrize("method", ["head", "options", "put", "delete", "patch"])
def test_T16_every_method_is_held_until_enrolment(client, make_user, method):
    person = make_user("newadmin")
    person.groups.add(Group.objects.get(name=roles.ADMIN))
    login(client, person.username)
    for path in ["/admin/users/", "/audit/", "/accounts/sessions/", "/accounts/email/", "/accounts/3rdparty/"]:
        response = getattr(client, method)(path)
        assert response.status_code in (302, 403), (path, response.status_code)
        if response.status_code == 302:
            assert response["Location"] == "/accounts/2fa/"


def test_T16_a_code_used_at_login_is_not_accepted_again_for_reauthentication(client, user):
    enrol_mfa(user)
    client.post("/accounts/login/", {"login": user.username, "password": STRONG_PASSWORD})
    code = pyotp.TOTP(TOTP_SECRET).now()
    assert client.post(MFA_STEP, {"code": code}).status_code == 302
    assert client.post("/accounts/2fa/reauthenticate/", {"code": code}).status_code == 200


def test_T33_renaming_a_security_key_is_audited(client, user):
    SoftKey(user)
    enrol_mfa(user)
    login(client, user.username)
    pk = Authenticator.objects.get(user=user, type=Authenticator.Type.WEBAUTHN).pk
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    before = AuditEvent.objects.count()
    response = client.post(f"/accounts/2fa/webauthn/keys/{pk}/edit/", {"name": "evil"})
    assert response.status_code == 302
    assert Authenticator.objects.get(pk=pk).data["name"] == "evil"
    event = AuditEvent.objects.get(action="mfa.renamed")
    assert AuditEvent.objects.count() - before == 1 and event.after == {"name": "evil"}


# --- e-mail addresses: where reset links go --------------------------------------------------


def test_T16_a_stolen_session_cannot_add_an_email_address_without_reauthentication(client, user, mailoutbox,
                                                                                    settings):
    login(client, user.username)
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 0
    client.post("/accounts/email/", {"email": "attacker@example.org", "action_add": ""})
    assert not EmailAddress.objects.filter(email="attacker@example.org").exists()
    HttpsClient().post("/accounts/password/reset/", {"email": "attacker@example.org"})
    assert not [m for m in mailoutbox if "attacker@example.org" in m.to]


def test_T33_adding_an_email_address_is_audited(client, user):
    login(client, user.username)
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    before = AuditEvent.objects.count()
    client.post("/accounts/email/", {"email": "new@example.org", "action_add": ""})
    assert EmailAddress.objects.filter(user=user, email="new@example.org").exists()
    assert list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))[before:] == ["email.added"]


def test_T16_the_last_security_key_a_role_requires_cannot_be_removed(client, make_user):
    person = make_user("keyholder")
    person.groups.add(Group.objects.get(name=roles.ADMIN))
    key = SoftKey(person)
    passkey_login(client, key)
    client.post(REAUTHENTICATE, {"password": STRONG_PASSWORD})
    pk = Authenticator.objects.get(user=person, type=Authenticator.Type.WEBAUTHN).pk
    response = client.post(f"/accounts/2fa/webauthn/keys/{pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/webauthn/"
    assert Authenticator.objects.filter(pk=pk).exists()
    enrol_mfa(person)  # with an authenticator app as well, the key may go
    client.post(f"/accounts/2fa/webauthn/keys/{pk}/remove/")
    assert not Authenticator.objects.filter(pk=pk).exists()
