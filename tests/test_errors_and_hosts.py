"""T32 (errors leak nothing), T18 (Host header), T06 (CSRF), T28 (request limits)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from bastion.audit.models import AuditEvent
from tests.conftest import STRONG_PASSWORD, HttpsClient, login
from tests.urlwalk import all_url_paths

pytestmark = pytest.mark.django_db
LEAKS = ["Traceback", "SELECT", "hunter2", "/etc/bastion", "no_such_column", "site-packages", "File \""]


@pytest.fixture
def crashing_site(settings):
    settings.ROOT_URLCONF = "tests.urls_crash"
    assert settings.DEBUG is False
    return HttpsClient(raise_request_exception=False)


@pytest.mark.parametrize("path", ["/crash/", "/crash/db/"])
def test_T32_server_error_shows_correlation_id_and_no_details(crashing_site, path, json_lines):
    response = crashing_site.get(path)
    body = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in body
    for leak in LEAKS:
        assert leak not in body, leak
    request_id = response["X-Request-ID"]
    assert request_id in body
    logged = "\n".join(json_lines())
    assert request_id in logged and "Traceback" in logged


def test_T32_debug_is_off_by_default(settings):
    assert settings.DEBUG is False


def test_T32_custom_404_and_403_pages(client, user):
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404 and "Not found" in missing.content.decode()
    assert missing["X-Request-ID"] in missing.content.decode()
    login(client, user.username)
    denied = client.get("/audit/")
    assert denied.status_code == 403 and "Access denied" in denied.content.decode()


def test_T18_foreign_host_header_refused(client):
    response = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "evil.example" not in response.content.decode()


def test_T18_allowed_hosts_never_wildcard(settings):
    assert "*" not in settings.ALLOWED_HOSTS


# --- T06 CSRF ---------------------------------------------------------------------------------
@pytest.fixture
def strict_client(user):
    # A browser posting from Bastion's own page sends its Origin; only the token is missing.
    strict = HttpsClient(enforce_csrf_checks=True, HTTP_ORIGIN="https://testserver")
    page = strict.get("/accounts/login/")
    token = page.context["csrf_token"]
    response = strict.post("/accounts/login/", {"login": user.username, "password": STRONG_PASSWORD,
                                                "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    return strict


def _change(client, **extra):
    return client.post("/accounts/password/change/", {
        "oldpassword": STRONG_PASSWORD, "password1": "new-Strong-passw0rd", "password2": "new-Strong-passw0rd",
        **extra})


def test_T06_post_without_token_refused_and_nothing_changed(strict_client, user):
    response = _change(strict_client)
    assert response.status_code == 403
    assert "did not come from this site" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_T06_post_with_wrong_token_refused(strict_client, user):
    response = _change(strict_client, csrfmiddlewaretoken="x" * 64)
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


def test_T06_post_with_right_token_works(strict_client, user):
    token = strict_client.get("/accounts/password/change/").context["csrf_token"]
    assert _change(strict_client, csrfmiddlewaretoken=str(token)).status_code == 302


def test_T06_logout_without_token_refused(strict_client):
    assert strict_client.post("/accounts/logout/").status_code == 403
    assert strict_client.get("/").status_code == 200


def test_T06_cookies_are_samesite(settings):
    assert settings.SESSION_COOKIE_SAMESITE in {"Lax", "Strict"}
    assert settings.CSRF_COOKIE_SAMESITE in {"Lax", "Strict"}


def test_T06_get_to_every_url_changes_nothing(logged_in, user):
    before_user = get_user_model().objects.values().get(pk=user.pk)
    events_before = AuditEvent.objects.count()
    for _name, path in all_url_paths():
        logged_in.get(path)
    assert get_user_model().objects.values().get(pk=user.pk) == before_user
    assert AuditEvent.objects.exclude(action="request.denied").count() == events_before
    assert logged_in.get("/").status_code == 200  # still signed in: GET logout did nothing


# --- T28 request limits -------------------------------------------------------------------------------
def test_T28_oversized_body_refused(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/accounts/login/", {"login": "a" * 4096, "password": "x"})
    assert response.status_code == 400


def test_T28_too_many_fields_refused(client, settings):
    fields = {f"f{i}": "1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client.post("/accounts/login/", fields)
    assert response.status_code == 400


def test_T28_server_limits_header_sizes():
    import argparse

    from bastion.server import gunicorn_options

    options = gunicorn_options(argparse.Namespace(
        host="127.0.0.1", port=8443, workers=1, proxy_count=0, plain_http=False, cert="c", key="k",
        http_redirect_port=0, site_url=""))
    assert options["limit_request_line"] <= 8190
    assert options["limit_request_fields"] <= 100
    assert options["limit_request_field_size"] <= 8190
    assert options["timeout"] <= 300


def test_T29_server_tls_context_refuses_below_tls_1_2():
    """Unit proof: the system OpenSSL may refuse old TLS anyway, so the live test alone cannot tell."""
    import ssl

    from bastion.server import tls12_or_newer

    def permissive_factory() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        return context

    context = tls12_or_newer(None, permissive_factory)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
