"""A real OpenID Connect provider for tests: pyop, served over TLS on 127.0.0.1 from a thread.

It offers discovery, JWKS, authorization (approving ``current_user`` without a login page), token and
userinfo endpoints, with in-memory state. The certificate is self-signed; tests point ``requests`` at it
with REQUESTS_CA_BUNDLE (pyop, like Bastion, insists on an https issuer).

    with LocalOIDCProvider(tmp_path, redirect_uri) as idp:
        idp.add_user("ada", email="ada@example.org", groups=["idp-admins"])
        idp.current_user = "ada"
"""

from __future__ import annotations

import json
import ssl
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from Cryptodome.PublicKey import RSA
from jwkest.jwk import RSAKey
from pyop.authz_state import AuthorizationState
from pyop.exceptions import BearerTokenError, OAuthError
from pyop.provider import Provider
from pyop.subject_identifier import HashBasedSubjectIdentifierFactory
from pyop.userinfo import Userinfo

from bastion.tls import make_self_signed

CLIENT_ID = "bastion-test"
CLIENT_SECRET = "test-client-secret-1234567890"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalOIDCProvider:
    """pyop behind a threaded WSGI server; ``authorization_requests`` keeps what each /authorize received."""

    def __init__(self, tmp_dir: Path, redirect_uri: str) -> None:
        self.ca_file = tmp_dir / "idp-cert.pem"
        make_self_signed(self.ca_file, tmp_dir / "idp-key.pem", ["127.0.0.1"])
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, tmp_dir / "idp-key.pem")
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_Server, handler_class=_QuietHandler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.issuer = f"https://127.0.0.1:{self.server.server_port}"
        self.users: dict[str, dict[str, Any]] = {}
        self.current_user: str | None = None
        self.authorization_requests: list[dict[str, Any]] = []
        self.provider = Provider(
            RSAKey(key=RSA.generate(2048), alg="RS256", use="sig", kid="test-key"),
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "scopes_supported": ["openid", "profile", "email"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
            },
            AuthorizationState(HashBasedSubjectIdentifierFactory("test-salt")),
            {CLIENT_ID: {"client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri],
                         "response_types": ["code"], "token_endpoint_auth_method": "client_secret_post"}},
            Userinfo(self.users),
        )
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add_user(self, user_id: str, **claims: Any) -> None:
        """A user the provider knows; ``groups`` travels in the ID token, the rest in userinfo."""
        self.users[user_id] = {"sub": user_id, **claims}

    def __enter__(self) -> LocalOIDCProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def _id_token_claims(self, user_id: str, client_id: str) -> dict[str, Any]:
        return {"groups": self.users[user_id].get("groups", [])}

    def _handle(self, method: str, path: str, query: str, body: str, headers: dict[str, str]) -> tuple[str, Any]:
        if path == "/.well-known/openid-configuration":
            return "200 OK", self.provider.provider_configuration.to_dict()
        if path == "/jwks":
            return "200 OK", self.provider.jwks
        if path == "/authorize":
            request = self.provider.parse_authentication_request(query)
            self.authorization_requests.append(request.to_dict())
            response = self.provider.authorize(request, self.current_user)
            return "302 Found", response.request(request["redirect_uri"])
        if path == "/token" and method == "POST":
            response = self.provider.handle_token_request(body, headers, extra_id_token_claims=self._id_token_claims)
            return "200 OK", response.to_dict()
        if path == "/userinfo":
            return "200 OK", self.provider.handle_userinfo_request(body or query, headers).to_dict()
        return "404 Not Found", {"error": "not_found"}

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        headers = {"Authorization": environ["HTTP_AUTHORIZATION"]} if "HTTP_AUTHORIZATION" in environ else {}
        try:
            status, payload = self._handle(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                                           environ.get("QUERY_STRING", ""), body, headers)
        except (OAuthError, BearerTokenError) as exc:
            status, payload = "400 Bad Request", {"error": "invalid_request", "error_description": str(exc)}
        if status.startswith("302"):
            start_response(status, [("Location", payload)])
            return [b""]
        data = json.dumps(payload).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(url.partition("?")[2]))
