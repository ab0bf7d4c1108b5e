from __future__ import annotations

import io
import logging
import logging.config
import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

STRONG_PASSWORD = "correct-Horse-battery-9"


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


@pytest.fixture
def admin(db):
    from bastion.accounts.services import create_admin

    create_admin("root-admin", STRONG_PASSWORD)
    return get_user_model().objects.get(username="root-admin")


def login(client: Client, username: str, password: str = STRONG_PASSWORD, **extra):
    return client.post("/accounts/login/", {"login": username, "password": password}, **extra)


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
