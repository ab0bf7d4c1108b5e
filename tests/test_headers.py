"""T05 (CSP), T07 (clickjacking) and the other security headers, on every URL pattern."""

from __future__ import annotations

import pytest

from tests.conftest import login
from tests.urlwalk import all_url_paths

PATHS = [path for _name, path in all_url_paths()]
REQUIRED_CSP = [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "report-uri /csp-report/",
]


def csp_directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.strip().split(" ", 1)[0]: part.strip() for part in header.split(";") if part.strip()}


def assert_hardened(response, path):
    csp = response.get("Content-Security-Policy", "")
    for directive in REQUIRED_CSP:
        assert directive in csp, f"{path}: CSP lacks {directive!r}: {csp!r}"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
    assert response["X-Frame-Options"] == "DENY", path
    assert response["X-Content-Type-Options"] == "nosniff", path
    assert response["Referrer-Policy"] == "same-origin", path
    assert "max-age=31536000" in response["Strict-Transport-Security"], path
    assert "no-store" in response["Cache-Control"], path


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_T05_T07_headers_on_every_url_pattern_anonymous(client, path):
    assert_hardened(client.get(path), path)


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_T05_T07_headers_on_every_url_pattern_signed_in(client, user, path):
    assert login(client, user.username).status_code == 302
    assert_hardened(client.get(path), path)


@pytest.mark.django_db
def test_T05_T07_headers_on_error_pages(client):
    assert_hardened(client.get("/no/such/page/"), "404")
    assert_hardened(client.post("/"), "405")


def test_T05_csp_forbids_inline_script_and_style(client, db):
    directives = csp_directives(client.get("/accounts/login/"))
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"


@pytest.mark.django_db
def test_T05_csp_report_endpoint_logs_violation(client, caplog):
    report = {"csp-report": {"violated-directive": "script-src", "blocked-uri": "inline"}}
    response = client.post("/csp-report/", data=report, content_type="application/csp-report")
    assert response.status_code == 204
    assert any("csp_violation" in str(r.msg) for r in caplog.records)


@pytest.mark.django_db
def test_T05_csp_report_endpoint_refuses_get(client):
    assert client.get("/csp-report/").status_code == 405


@pytest.mark.django_db
def test_T29_plain_http_is_redirected_to_https(db):
    from django.test import Client

    response = Client().get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
