"""The production server: gunicorn with TLS 1.2+, started by `bastion serve`.

Run as ``python -I -m bastion.server ...`` (isolated mode: no PYTHONPATH, no
user site-packages, no current directory on sys.path; T44).
"""

from __future__ import annotations

import argparse
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gunicorn.app.base import BaseApplication

MAX_WORKERS = 8


def default_workers() -> int:
    return min(MAX_WORKERS, (os.cpu_count() or 1) * 2 + 1)


class RedirectToHttps(BaseHTTPRequestHandler):
    """Answers every plain-HTTP request with a redirect to the same path on the HTTPS site (T29).

    The target is the configured site URL, never the request's Host header, so
    this cannot be turned into an open redirect.
    """

    site_url = ""

    def _redirect(self) -> None:
        path = "/" + self.path.lstrip("/")  # "//evil.example" stays a path on our own site
        self.send_response(301)
        self.send_header("Location", self.site_url + path)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _redirect

    def log_message(self, format: str, *args: Any) -> None:
        pass  # gunicorn's own log stays the one place for server messages


def start_redirector(host: str, port: int, site_url: str) -> ThreadingHTTPServer:
    """Serve the HTTP-to-HTTPS redirect from a daemon thread of the server's master process."""
    handler = type("SiteRedirect", (RedirectToHttps,), {"site_url": site_url.rstrip("/")})
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, name="http-redirect", daemon=True).start()
    return server


def tls12_or_newer(config: Any, default_factory: Any) -> ssl.SSLContext:
    context = default_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    return context


class BastionServer(BaseApplication):
    def __init__(self, options: dict[str, Any]):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from bastion.wsgi import application

        return application


def gunicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"],
        "workers": args.workers or default_workers(),
        # Threads keep a worker responsive while one request waits on a slow
        # target database or a login slow-down.
        "worker_class": "gthread",
        "threads": 4,
        "timeout": 120,
        "graceful_timeout": 30,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "accesslog": None,  # Bastion logs every request itself, as JSON with its request id
        "errorlog": "-",
        "proc_name": "bastion",
        # gunicorn's control socket lives in $HOME, shared by every server of
        # the account; Bastion does not use it.
        "control_socket_disable": True,
        "forwarded_allow_ips": "*" if args.proxy_count else "",
    }
    on_ready: list[Any] = []
    if not args.plain_http:
        options.update(certfile=args.cert, keyfile=args.key, ssl_context=tls12_or_newer)
        if args.http_redirect_port:
            on_ready.append(lambda server: start_redirector(args.host, args.http_redirect_port, args.site_url))
    if getattr(args, "jobs_worker", False):
        # Background jobs (imports, exports) run in a process of their own, started and stopped by the master.
        from bastion.jobs.embedded import EmbeddedWorker

        worker = EmbeddedWorker()
        on_ready.append(lambda server: worker.start(server.log))
        options["on_exit"] = lambda server: worker.stop()
    if on_ready:
        def when_ready(server: Any) -> None:
            for start in on_ready:
                start(server)

        options["when_ready"] = when_ready
    return options


def main() -> None:
    parser = argparse.ArgumentParser(prog="bastion.server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--proxy-count", type=int, default=0)
    parser.add_argument("--plain-http", action="store_true")
    parser.add_argument("--http-redirect-port", type=int, default=0)
    parser.add_argument("--site-url", default="")
    parser.add_argument("--jobs-worker", action="store_true", help="also run the background-job worker")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    BastionServer(gunicorn_options(args)).run()


if __name__ == "__main__":
    main()
