"""Transport security of the real server: TLS versions, headers, plain HTTP, Host.

Rows T29, T05, T07 and T18 of SECURITY.md, proven against `bastion serve` itself.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import warnings
from pathlib import Path

import pytest

from tests.live.conftest import LiveBastion

pytestmark = pytest.mark.live

TIMEOUT = 10.0
ONE_YEAR = 31536000


def tls_client(cert: Path, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client trusting only Bastion's certificate; with ``maximum``, also legacy TLS."""
    context = ssl.create_default_context(cafile=str(cert))
    if maximum is not None:
        allow_legacy_tls(context, maximum)
    return context


def allow_legacy_tls(context: ssl.SSLContext, maximum: ssl.TLSVersion | None = None) -> None:
    """Let ``context`` offer TLS 1.0 and 1.1 (up to ``maximum``), off by default."""
    # Security level 0 permits the SHA-1 signatures that TLS < 1.2 needs, so that
    # only the peer, not our own OpenSSL, can refuse the old versions.
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        if maximum is not None:
            context.maximum_version = maximum


def handshake(context: ssl.SSLContext, port: int) -> str | None:
    """The negotiated TLS version, or raises ssl.SSLError / OSError when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        return tls.version()


def permissive_server_version(cert: Path, key: Path, client: ssl.SSLContext) -> str | None:
    """What ``client`` negotiates with a local server that accepts TLS 1.0+, or None if nothing."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(cert), str(key))
    allow_legacy_tls(server)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def accept_one() -> None:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            try:
                with server.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=accept_one, daemon=True)
        thread.start()
        try:
            return handshake(client, listener.getsockname()[1])
        except (ssl.SSLError, OSError):
            return None
        finally:
            thread.join(TIMEOUT)


def certificate(live: LiveBastion) -> Path:
    return live.data_dir / "tls" / "cert.pem"


def https(live: LiveBastion, path: str, headers: dict[str, str] | None = None,
          ) -> http.client.HTTPResponse:
    """GET ``path`` over verified HTTPS; the body is read and the connection closed."""
    conn = http.client.HTTPSConnection(live.host, live.port, timeout=TIMEOUT,
                                       context=tls_client(certificate(live)))
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name.lower()] = values
    return directives


def test_T29_tls_below_1_2_refused(live_bastion: LiveBastion) -> None:
    cert, key = certificate(live_bastion), live_bastion.data_dir / "tls" / "key.pem"
    old_tls = tls_client(cert, maximum=ssl.TLSVersion.TLSv1_1)
    # Control: without it, a refusal could just mean that this client cannot speak TLS 1.1.
    if permissive_server_version(cert, key, old_tls) != "TLSv1.1":
        pytest.skip("this OpenSSL cannot negotiate TLS 1.1, so a refusal would prove nothing")

    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(old_tls, live_bastion.port)
    tls12 = tls_client(cert, maximum=ssl.TLSVersion.TLSv1_2)
    assert handshake(tls12, live_bastion.port) == "TLSv1.2"
    assert handshake(tls_client(cert), live_bastion.port) == "TLSv1.3"


@pytest.mark.parametrize("path", ["/", "/accounts/login/"])
def test_T29_hsts_and_security_headers_on_real_server(live_bastion: LiveBastion, path: str) -> None:
    response = https(live_bastion, path)
    assert response.status in {200, 302}

    hsts = response.getheader("Strict-Transport-Security", "")
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= ONE_YEAR
    csp = csp_directives(response.getheader("Content-Security-Policy", ""))
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # and so no 'unsafe-inline' nor 'unsafe-eval'
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert not any("unsafe" in value for values in csp.values() for value in values)
    assert response.getheader("X-Frame-Options") == "DENY"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy")


def test_T29_plain_http_to_tls_port_is_not_served(live_bastion: LiveBastion) -> None:
    received = b""
    with socket.create_connection(("127.0.0.1", live_bastion.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    status_line = received.split(b"\r\n", 1)[0]
    assert not received.startswith(b"HTTP/") or b" 400 " in status_line + b" ", status_line
    assert b"Sign in" not in received
    # Control: the same request over TLS is served.
    assert https(live_bastion, "/accounts/login/").status == 200


@pytest.mark.parametrize(("path", "expected"), [
    ("/accounts/login/?next=/audit/", "/accounts/login/?next=/audit/"),
    ("//evil.example/steal", "/evil.example/steal"),
])
def test_T29_plain_http_port_redirects_to_the_https_site(live_bastion: LiveBastion, path: str,
                                                          expected: str) -> None:
    for method in ("GET", "POST"):
        conn = http.client.HTTPConnection("127.0.0.1", live_bastion.http_port, timeout=TIMEOUT)
        try:
            conn.request(method, path, headers={"Host": "evil.example"})
            response = conn.getresponse()
            assert response.status == 301
            assert response.getheader("Location") == live_bastion.base_url + expected
        finally:
            conn.close()


def test_T18_foreign_host_header_rejected_by_real_server(live_bastion: LiveBastion) -> None:
    assert https(live_bastion, "/accounts/login/", {"Host": "evil.example"}).status == 400
    own_host = f"127.0.0.1:{live_bastion.port}"
    assert https(live_bastion, "/accounts/login/", {"Host": own_host}).status == 200
