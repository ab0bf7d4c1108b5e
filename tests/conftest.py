from __future__ import annotations

import io
import logging
import logging.config
import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

STRONG_PASSWORD = "correct-Horse-battery-9"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # enrol_mfa's authenticator app; codes via pyotp.TOTP(TOTP_SECRET)
MFA_STEP = "/accounts/2fa/authenticate/"


class HttpsClient(Client):
    """Django's test client speaking HTTPS, as every real client of Bastion does."""

    def generic(self, *args, secure: bool = True, **kwargs):
        return super().generic(*args, secure=True, **kwargs)


@pytest.fixture
def client() -> Client:
    return HttpsClient()


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", password: str = STRONG_PASSWORD, **extra):
        return get_user_model().objects.create_user(username=username, password=password, **extra)
    return make


@pytest.fixture
def user(make_user):
    return make_user()


def enrol_mfa(user) -> None:
    """An authenticator app (secret TOTP_SECRET) and recovery codes for ``user``, as enrolment leaves them."""
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP

    TOTP.activate(user, TOTP_SECRET)
    RecoveryCodes.activate(user)


def recovery_code(username: str) -> str:
    """An unused recovery code of ``username`` (allauth accepts it wherever it asks for a TOTP code)."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    authenticator = Authenticator.objects.get(user__username=username, type=Authenticator.Type.RECOVERY_CODES)
    return RecoveryCodes(authenticator).get_unused_codes()[0]


@pytest.fixture
def admin(db):
    """The first administrator, with the second factor the Admin role requires already enrolled."""
    from bastion.accounts.services import create_admin

    create_admin("root-admin", STRONG_PASSWORD)
    admin = get_user_model().objects.get(username="root-admin")
    enrol_mfa(admin)
    return admin


@pytest.fixture
def admin_client(admin) -> Client:
    """A client of its own, signed in as the first administrator (both factors)."""
    client = HttpsClient()
    assert login(client, admin.username).status_code == 302
    return client


def login(client: Client, username: str, password: str = STRONG_PASSWORD, **extra):
    """Sign in through the login page; a user with a second factor completes it with a recovery code."""
    response = client.post("/accounts/login/", {"login": username, "password": password}, **extra)
    if response.status_code == 302 and response["Location"].startswith(MFA_STEP):
        response = client.post(MFA_STEP, {"code": recovery_code(username)}, **extra)
    return response


@pytest.fixture
def logged_in(client, user) -> Client:
    response = login(client, user.username)
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def json_lines():
    """Lines the project's JSON log formatter writes during the test, as a callable."""
    from bastion.logs import logging_config

    config = logging_config("INFO")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.config.DictConfigurator(config).configure_formatter(
        config["formatters"]["json"]))
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [line for line in stream.getvalue().split("\n") if line]
    root.removeHandler(handler)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


@pytest.fixture(autouse=True)
def _fresh_reflection_memo():
    """Each test starts without the per-process reflection memo: the shared cache it mirrors is per test."""
    from bastion.connections import reflection

    reflection._local.clear()
    yield
    reflection._local.clear()
