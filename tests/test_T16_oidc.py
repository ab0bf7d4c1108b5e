"""Single sign-on with OpenID Connect (T16, T09, T15) against a real provider started in the test.

tests.oidc_provider runs pyop over TLS on 127.0.0.1; Bastion talks to it through allauth's
openid_connect provider, configured exactly as bastion.settings builds it from BASTION_OIDC_*.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse

from bastion.access.roles import ADMIN, AUDITOR, EDITOR, VIEWER
from bastion.audit.models import AuditEvent
from tests.conftest import MFA_STEP, TOTP_SECRET, HttpsClient, enrol_mfa, login
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, LocalOIDCProvider, query_of

pytestmark = pytest.mark.django_db

User = get_user_model()
LOGIN_URL = reverse("openid_connect_login", kwargs={"provider_id": "sso"})
CALLBACK_URL = reverse("openid_connect_callback", kwargs={"provider_id": "sso"})
ROLE_MAP = {"idp-admins": ADMIN, "idp-dev": EDITOR, "idp-audit": AUDITOR}


@pytest.fixture
def idp(tmp_path, monkeypatch, settings):
    """The provider, and Bastion configured for it (auto-provisioning on unless a test turns it off)."""
    with LocalOIDCProvider(tmp_path, "https://testserver" + CALLBACK_URL) as provider:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(provider.ca_file))  # trust the test provider's certificate
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        settings.OIDC_ENABLED = True
        settings.OIDC_AUTO_PROVISION = True
        settings.OIDC_ROLE_MAP = ROLE_MAP
        settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [{
            "provider_id": "sso", "name": "Test IdP", "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
            "settings": {"server_url": provider.issuer, "scope": ["openid", "profile", "email"]},
        }]}}
        provider.add_user("ada", preferred_username="ada", email="ada@example.org", email_verified=True,
                          groups=["idp-dev"])
        yield provider


def to_provider(client: Client, idp: LocalOIDCProvider, user_id: str) -> str:
    """Start a sign-in at Bastion and let the provider approve ``user_id``: the callback URL it sends back."""
    idp.current_user = user_id
    start = client.post(LOGIN_URL)
    assert start.status_code == 302 and start["Location"].startswith(idp.issuer + "/authorize?"), start
    answer = requests.get(start["Location"], allow_redirects=False, verify=idp.ca_file, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def back_to_bastion(client: Client, callback: str, **changes: str):
    url = urlsplit(callback)
    assert url.path == CALLBACK_URL
    return client.get(url.path, {**query_of(callback), **changes})


def sso_login(client: Client, idp: LocalOIDCProvider, user_id: str):
    return back_to_bastion(client, to_provider(client, idp, user_id))


def signed_in_as(client: Client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id).username if user_id else None


def roles_of(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_T16_login_page_offers_sso_only_when_configured(client, settings):
    assert LOGIN_URL not in client.get("/accounts/login/").content.decode()
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [{
        "provider_id": "sso", "name": "Example IdP", "client_id": CLIENT_ID, "secret": CLIENT_SECRET,
        "settings": {"server_url": "https://idp.example.org"}}]}}
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Example IdP" in page
    assert f'<form method="post" action="{LOGIN_URL}"' in page and "csrfmiddlewaretoken" in page


def test_T16_sso_login_starts_on_post_with_csrf_only(idp):
    assert HttpsClient().get(LOGIN_URL).status_code == 200  # a confirmation page, no redirect to the provider
    assert HttpsClient(enforce_csrf_checks=True).post(LOGIN_URL).status_code == 403
    assert idp.authorization_requests == []


def test_T16_first_sso_login_provisions_the_user_with_mapped_roles(client, idp):
    response = sso_login(client, idp, "ada")
    assert response.status_code == 302, response.content[:500]
    assert signed_in_as(client) == "ada"
    ada = User.objects.get(username="ada")
    assert ada.email == "ada@example.org" and not ada.has_usable_password()
    assert roles_of("ada") == {EDITOR}
    request = idp.authorization_requests[-1]
    assert request["code_challenge_method"] == "S256" and request["code_challenge"]  # PKCE
    login_event = events("login.success")[-1]
    assert (login_event.target, login_event.auth_method) == ("ada", "oidc")
    assert [e.target for e in events("user.created")] == ["ada"]
    synced = events("role.sso_synced")
    assert len(synced) == 1 and synced[0].details["added"] == [EDITOR]


def test_T16_roles_are_reapplied_at_every_sso_login(client, idp):
    idp.users["ada"]["groups"] = ["idp-dev", "idp-audit"]
    sso_login(client, idp, "ada")
    ada = User.objects.get(username="ada")
    ada.groups.add(Group.objects.get(name=VIEWER))  # given in Bastion, not by the map: left alone
    assert roles_of("ada") == {EDITOR, AUDITOR, VIEWER}
    client.post("/accounts/logout/")

    idp.users["ada"]["groups"] = ["idp-audit"]  # taken away at the provider
    assert sso_login(client, idp, "ada").status_code == 302
    assert roles_of("ada") == {AUDITOR, VIEWER}
    last = events("role.sso_synced")[-1]
    assert (last.details["added"], last.details["removed"]) == ([], [EDITOR])

    client.post("/accounts/logout/")
    before = len(events("role.sso_synced"))
    sso_login(client, idp, "ada")  # nothing changed: no event
    assert len(events("role.sso_synced")) == before


def test_T16_unknown_user_is_refused_when_auto_provisioning_is_off(client, idp, settings):
    settings.OIDC_AUTO_PROVISION = False
    response = sso_login(client, idp, "ada")
    assert response.status_code == 403
    assert "no Bastion account" in response.content.decode()
    assert signed_in_as(client) is None and not User.objects.filter(username="ada").exists()
    refused = events("login.failed")[-1]
    assert (refused.auth_method, refused.details["reason"]) == ("oidc", "no_account")
    assert not events("request.denied")  # one event for the refusal


def test_T16_provider_identity_does_not_take_over_a_local_account_by_email(client, idp, make_user):
    make_user("bob", email="ada@example.org")  # a local account with the address the provider asserts
    idp.users["ada"]["preferred_username"] = "bob"
    response = sso_login(client, idp, "ada")
    assert response.status_code == 403 and signed_in_as(client) is None
    assert events("login.failed")[-1].details["reason"] == "email_taken"
    assert list(User.objects.values_list("username", flat=True)) == ["bob"]


def test_T16_linking_by_verified_email_is_opt_in(client, idp, make_user, settings):
    settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION = True  # BASTION_OIDC_LINK_BY_EMAIL
    settings.SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
    make_user("bob", email="ada@example.org")
    idp.users["ada"]["email_verified"] = False
    assert sso_login(client, idp, "ada").status_code == 403  # unverified: never linked
    idp.users["ada"]["email_verified"] = True
    assert sso_login(client, idp, "ada").status_code == 302
    assert signed_in_as(client) == "bob"


def test_T16_username_collision_gets_a_new_name_not_the_existing_account(client, idp, make_user):
    make_user("ada", email="someone-else@example.org")
    sso_login(client, idp, "ada")
    assert signed_in_as(client) not in (None, "ada")
    assert signed_in_as(client).startswith("ada")


def test_T16_callback_with_a_wrong_state_is_refused(client, idp):
    callback = to_provider(client, idp, "ada")
    response = back_to_bastion(client, callback, state="tampered-state")
    assert response.status_code == 401 and signed_in_as(client) is None
    assert events("login.failed")[-1].auth_method == "oidc"
    assert not events("request.denied")
    assert back_to_bastion(client, callback).status_code == 302  # the real state still works, once
    assert back_to_bastion(HttpsClient(), callback).status_code == 401


def test_T16_code_from_another_browser_is_refused(idp):
    victim, attacker = HttpsClient(), HttpsClient()
    attackers_callback = to_provider(attacker, idp, "ada")
    victims_callback = to_provider(victim, idp, "ada")
    # The attacker's code under the victim's state: the victim's PKCE verifier does not fit it.
    response = back_to_bastion(victim, victims_callback, code=query_of(attackers_callback)["code"])
    assert response.status_code == 401 and signed_in_as(victim) is None


def test_T09_sso_login_rotates_the_session_key(client, idp):
    callback = to_provider(client, idp, "ada")
    before = client.session.session_key
    assert before  # the state of the round trip lives in this anonymous session
    assert back_to_bastion(client, callback).status_code == 302
    assert signed_in_as(client) == "ada" and client.session.session_key != before


def test_T16_sso_login_of_a_user_with_mfa_still_asks_the_second_factor(client, idp):
    sso_login(client, idp, "ada")
    enrol_mfa(User.objects.get(username="ada"))
    client.post("/accounts/logout/")
    response = sso_login(client, idp, "ada")
    assert response.status_code == 302 and response["Location"].startswith(MFA_STEP)
    assert signed_in_as(client) is None
    assert client.post(MFA_STEP, {"code": pyotp.TOTP(TOTP_SECRET).now()}).status_code == 302
    assert signed_in_as(client) == "ada"
    assert events("login.success")[-1].auth_method == "oidc+mfa"  # the second factor shows in the audit log


def test_T15_sso_only_password_of_a_non_admin_fails_like_a_wrong_one(client, idp, settings, make_user, admin):
    settings.OIDC_SSO_ONLY = True
    make_user("carol")
    right = login(HttpsClient(), "carol")
    wrong = login(HttpsClient(), "carol", "not-the-password-1")
    assert right.status_code == wrong.status_code == 200
    assert right.context["form"].errors == wrong.context["form"].errors
    assert [e.target for e in events("login.failed")][-2:] == ["carol", "carol"]
    admin_client = HttpsClient()
    assert login(admin_client, "root-admin").status_code == 302  # administrators keep their password
    assert signed_in_as(admin_client) == "root-admin"


def test_T15_sso_only_password_reset_is_refused_silently(client, idp, settings, make_user):
    make_user("carol", email="carol@example.org")
    settings.OIDC_SSO_ONLY = True
    known = client.post("/accounts/password/reset/", {"email": "carol@example.org"})
    unknown = client.post("/accounts/password/reset/", {"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 302 and known["Location"] == unknown["Location"]
    assert [m for m in mail.outbox if "carol@example.org" in m.to] == []
    assert events("password.reset_refused")[-1].target == "carol"
    settings.OIDC_SSO_ONLY = False
    client.post("/accounts/password/reset/", {"email": "carol@example.org"})
    assert [m.to for m in mail.outbox] == [["carol@example.org"]]

# --- SSO-only mode and e-mailed links: a link never gives a password or a session SSO would refuse -----
def _invite_in_sso_only(settings, admin, roles: tuple[str, ...] = ()) -> str:
    from tests.test_T17_email_links import invite

    admin_client = HttpsClient()
    assert login(admin_client, admin.username).status_code == 302
    settings.OIDC_ENABLED = settings.OIDC_SSO_ONLY = True
    return invite(admin_client, mail.outbox, roles=[Group.objects.get(name=r).pk for r in roles])


def test_T15_sso_only_invitation_activates_without_password_or_session(settings, admin):
    from tests.test_T17_email_links import NEW_PASSWORD, accept

    path = _invite_in_sso_only(settings, admin)
    page = HttpsClient().get(path)
    assert page.status_code == 200 and 'name="new_password1"' not in page.content.decode()
    invitee = HttpsClient()
    done = accept(path, NEW_PASSWORD, invitee)
    assert done.status_code == 302 and done["Location"] == reverse("account_login")
    assert "_auth_user_id" not in invitee.session
    assert "Sign in with single sign-on" in invitee.get(done["Location"]).content.decode()
    ivy = User.objects.get(username="ivy")
    assert ivy.is_active and not ivy.has_usable_password()
    assert events("invitation.accepted")[-1].details == {"password": False}
    assert HttpsClient().get(path).status_code == 400  # spent


def test_T15_sso_only_invited_administrator_still_sets_a_password(settings, admin):
    from tests.test_T17_email_links import NEW_PASSWORD, accept

    path = _invite_in_sso_only(settings, admin, roles=(ADMIN,))
    invitee = HttpsClient()
    assert accept(path, NEW_PASSWORD, invitee).status_code == 302
    assert signed_in_as(invitee) == "ivy" and User.objects.get(username="ivy").check_password(NEW_PASSWORD)


def test_T15_sso_only_activation_link_activates_without_session_and_sign_up_is_closed(client, settings):
    from tests.test_T17_email_links import link_in, path_of, register

    settings.SELF_REGISTRATION = True
    assert register(client).status_code == 302  # registered before SSO-only mode was switched on
    path = path_of(link_in(mail.outbox[-1].body))
    settings.OIDC_ENABLED = settings.OIDC_SSO_ONLY = True
    visitor = HttpsClient()
    done = visitor.post(path)
    assert done.status_code == 302 and done["Location"] == reverse("account_login")
    assert "_auth_user_id" not in visitor.session and User.objects.get(username="sam").is_active
    register(HttpsClient(), "tom")
    assert not User.objects.filter(username="tom").exists()


def settings_from(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """bastion.settings built from BASTION_* in a fresh interpreter, as `bastion serve` builds it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    code = ("import json, bastion.settings as s; print(json.dumps([s.OIDC_ROLE_MAP, "
            "s.SOCIALACCOUNT_PROVIDERS['openid_connect']['APPS']]))")
    return subprocess.run([sys.executable, "-c", code], env={**clean, "BASTION_DATA_DIR": str(tmp_path), **env},
                          capture_output=True, text=True, timeout=60, check=False)


def test_T16_sso_is_configured_from_bastion_settings_with_the_secret_from_a_file(tmp_path):
    assert json.loads(settings_from(tmp_path).stdout)[1] == []  # off by default
    secret = tmp_path / "oidc_secret"
    secret.write_text("s3cret-from-file\n")
    done = settings_from(tmp_path, BASTION_OIDC_ISSUER="https://idp.example.org", BASTION_OIDC_CLIENT_ID="bastion",
                         BASTION_OIDC_CLIENT_SECRET_FILE=str(secret), BASTION_OIDC_NAME="Example",
                         BASTION_OIDC_ROLE_MAP="idp-admins=Admin, idp-dev = Editor")
    role_map, apps = json.loads(done.stdout)
    assert role_map == {"idp-admins": "Admin", "idp-dev": "Editor"}
    assert apps[0]["secret"] == "s3cret-from-file" and apps[0]["name"] == "Example"
    assert apps[0]["settings"]["server_url"] == "https://idp.example.org"
    plain = settings_from(tmp_path, BASTION_OIDC_ISSUER="http://idp.example.org")
    assert plain.returncode != 0 and "must be an https:// URL" in plain.stderr
    bad_map = settings_from(tmp_path, BASTION_OIDC_ISSUER="https://idp.example.org", BASTION_OIDC_ROLE_MAP="Admin")
    assert bad_map.returncode != 0 and "expected claim-value=Role" in bad_map.stderr
