"""Bastion against Datasette and sqlite-web on one SQLite file: latencies, throughput, bench/RESULTS.md.

Run through bench/run (or `make bench`), which prepares the peers' venv first;
see bench/README.md. Standard library only, so that it runs with any Python 3.11+.

Each tool in turn is started on a free local port against the same file, given
one warm-up request per page (whose content is checked: the expected rows, and
not their neighbours), measured with sequential keep-alive requests, loaded
with wrk on its first page, and stopped. Then the imports and exports
(transfer_bench.py). Every server is killed at exit, whatever ends the run
(error, Ctrl+C, SIGTERM).
"""

# Subprocesses run fixed argument lists (no shell) of programs from this repository's venvs, and wrk.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import html
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATA = BENCH / ".data"
LOGS = DATA / "logs"
PEERS_BIN = BENCH / ".venv-peers" / "bin"
BASTION_BIN = ROOT / ".venv" / "bin"
RESULTS = BENCH / "RESULTS.md"
QUICK_RESULTS = DATA / "RESULTS-quick.md"

DATASET_VERSION = 1  # bump when the generator changes: the cached file is then rebuilt
FULL_ROWS = 5_000_000
QUICK_ROWS = 200_000
PAGE_SIZE = 50
SLOW_SECONDS = 5.0  # a page whose warm-up takes longer is measured with --slow-requests requests
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 600.0
ADMIN_USER = "bench"
CONNECTION_NAME = "Bench events"
BASTION_SESSION_COOKIE = "__Host-bastion_session"
BASTION_CSRF_COOKIE = "__Host-bastion_csrf"

TARGETS = {  # name: (comparison, bound); printed next to the figures, never enforced
    "deep_over_first": ("<=", 1.5),
    "first_vs_datasette": ("<=", 0.1),
    "first_vs_datasette_lean": ("<=", 1.0),
    "sorted_deep_vs_sqliteweb": ("<=", 0.01),
    "rps_vs_datasette": (">=", 50.0),
    "import_vs_raw": (">=", 0.5),  # the transfers' figures: transfer_bench.py
    "export_vs_raw": (">=", 0.5),
    "export_rss_mb": ("<", 200.0),
}


class BenchError(Exception):
    """Something the user must fix or know about; the message says what."""


class ExplorerMissing(BenchError):
    """Bastion answers 404 for its table page: the explorer is not there yet."""


def say(message: str = "") -> None:
    print(message, flush=True)


def transfer() -> ModuleType:
    """bench/transfer_bench.py (imports and exports), which imports this module as `bench`: the running one,
    not a second copy with its own list of servers to stop."""
    sys.modules.setdefault("bench", sys.modules[__name__])
    import transfer_bench

    return transfer_bench


# --- the data set -----------------------------------------------------------------------------------------
GENERATOR_SQL = """
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :rows)
INSERT INTO events (id, ts, user_id, kind, amount, note)
SELECT x,
       -- x * 2654435761 mod 2 years (in seconds) is one-to-one for x < 63,072,000: distinct
       -- timestamps scattered over 2024-2025, so "sorted by ts" is a genuinely different order.
       strftime('%Y-%m-%d %H:%M:%S', 1704067200 + (x * 2654435761) % 63072000, 'unixepoch'),
       (x * 7919) % 100000 + 1,
       CASE (x * 31) % 5 WHEN 0 THEN 'view' WHEN 1 THEN 'click' WHEN 2 THEN 'purchase'
                         WHEN 3 THEN 'signup' ELSE 'refund' END,
       ((x * 48271) % 1000000) / 100.0,
       CASE WHEN x % 7 = 0 THEN NULL ELSE 'event ' || x || ' from user ' || ((x * 7919) % 100000 + 1) END
FROM n
"""
SCHEMA_SQL = ("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT, user_id INTEGER, kind TEXT, "
              "amount REAL, note TEXT)")


@dataclass
class Page:
    """One page every tool shows: which rows it must hold (and which it must not)."""

    key: str
    title: str
    expect_ts: list[str]  # timestamps of the first and the last row shown
    absent_ts: list[str]  # timestamps of the neighbouring rows, which must not be shown


@dataclass
class Dataset:
    rows: int
    path: Path
    deep: int  # rows before the deep pages
    pk_cursor: list[Any] = field(default_factory=list)  # key of row `deep` in id order
    ts_cursor: list[Any] = field(default_factory=list)  # key (ts, id) of row `deep` in ts order
    pages: dict[str, Page] = field(default_factory=dict)
    build_seconds: float | None = None


def build_dataset(rows: int) -> Dataset:
    path = DATA / f"events-v{DATASET_VERSION}-{rows}" / "db.sqlite3"
    built = None
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        say(f"Building {path.relative_to(ROOT)} ({rows:,} rows, once; cached afterwards) ...")
        started = time.perf_counter()
        db = sqlite3.connect(partial, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(SCHEMA_SQL)
            db.execute("BEGIN")
            db.execute(GENERATOR_SQL, {"rows": rows})
            db.execute("COMMIT")
            db.execute("CREATE INDEX events_ts ON events (ts)")
        finally:
            db.close()
        partial.chmod(0o644)
        os.replace(partial, path)  # a half-built file never takes the final name
        built = time.perf_counter() - started
        say(f"  built in {built:.1f} s")
    data = Dataset(rows=rows, path=path, deep=rows // 2, build_seconds=built)
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        count, = db.execute("SELECT count(*) FROM events").fetchone()
        if count != rows:
            raise BenchError(f"{path} holds {count} rows instead of {rows}: delete it and run again")

        def by_id(first: int, last: int) -> dict[int, str]:
            return dict(db.execute("SELECT id, ts FROM events WHERE id BETWEEN ? AND ?", (first, last)))

        def by_ts(offset: int, limit: int) -> list[tuple[str, int]]:
            sql = "SELECT ts, id FROM events ORDER BY ts, id LIMIT ? OFFSET ?"
            return [tuple(row) for row in db.execute(sql, (limit, offset))]

        d, n = data.deep, PAGE_SIZE
        ids = by_id(1, n + 1)
        data.pages["first"] = Page("first", "first page", [ids[1], ids[n]], [ids[n + 1]])
        ids = by_id(d, d + n + 1)
        data.pages["deep"] = Page("deep", f"{d:,} rows deep", [ids[d + 1], ids[d + n]], [ids[d], ids[d + n + 1]])
        data.pk_cursor = [d]
        around = by_ts(d - 1, n + 2)  # row `deep`, the page, the row after
        data.ts_cursor = list(around[0])
        data.pages["deep_ts"] = Page("deep_ts", f"{d:,} rows deep, sorted by ts",
                                     [around[1][0], around[n][0]], [around[0][0], around[n + 1][0]])
    finally:
        db.close()
    return data


def warm_file_cache(path: Path) -> None:
    """Read the file once so that whichever tool goes first does not pay for the disk alone."""
    with path.open("rb") as handle:
        while handle.read(8 << 20):
            pass


# --- processes and ports -------------------------------------------------------------------------------------
RUNNING: list[Server] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process in its own process group, so that stopping it stops its workers too."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int):
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log = LOGS / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            log.write(("$ " + shlex.join(self.argv) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        RUNNING.append(self)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, client: Client, path: str = "/") -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                tail = self.log_tail()
                say(f"{self.name} exited while starting; the end of {self.log.relative_to(ROOT)}:\n{tail}")
                last = tail.splitlines()[-1].strip() if tail else "no output"
                raise BenchError(f"{self.name} exited while starting: {last} (full log: "
                                 f"{self.log.relative_to(ROOT)})")
            try:
                status, _, _ = client.request("GET", path, timeout=5)
            except (OSError, http.client.HTTPException):
                time.sleep(0.25)
                continue
            if status < 500:
                return
            time.sleep(0.25)
        say(f"{self.name} did not answer; the end of {self.log.relative_to(ROOT)}:\n{self.log_tail()}")
        raise BenchError(f"{self.name} did not answer on port {self.port} within {READY_TIMEOUT:.0f} s "
                         f"(full log: {self.log.relative_to(ROOT)})")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        # Workers may outlive their master for a moment; none may outlive the benchmark.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def stop_all() -> None:
    for server in reversed(RUNNING):
        server.stop()
    RUNNING.clear()


def on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through `finally` and atexit, which stop the servers


# --- HTTP -----------------------------------------------------------------------------------------------
class Client:
    """One keep-alive HTTP(S) connection, reopened when the server closes it."""

    def __init__(self, port: int, tls: ssl.SSLContext | None, cookie: str = ""):
        self.port, self.tls, self.cookie = port, tls, cookie
        self.conn: http.client.HTTPConnection | None = None

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None,
                timeout: float = REQUEST_TIMEOUT) -> tuple[int, http.client.HTTPMessage, bytes]:
        all_headers = {"User-Agent": "bastion-bench", "Accept": "text/html", **(headers or {})}
        if self.cookie:
            all_headers["Cookie"] = self.cookie
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect(timeout)
            self.conn.timeout = timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                self.close()  # a keep-alive connection the server dropped: once more on a new one
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self.close()
                raise
            if response.will_close:
                self.close()
            return response.status, response.msg, data
        raise AssertionError("unreachable")

    def timed_get(self, path: str) -> tuple[float, int, bytes]:
        """One GET on the open connection; seconds from sending to the last body byte."""
        if self.conn is None:  # connecting is not part of a page's time
            self.conn = self._connect(REQUEST_TIMEOUT)
            self.conn.connect()
        started = time.perf_counter()
        status, _, body = self.request("GET", path)
        return time.perf_counter() - started, status, body


def check_page(tool: str, page: Page, path: str, status: int, body: bytes) -> None:
    text = html.unescape(body.decode("utf-8", errors="replace"))
    if status != 200:
        raise BenchError(f"{tool}: GET {path} answered {status}, not 200")
    missing = [ts for ts in page.expect_ts if ts not in text]
    present = [ts for ts in page.absent_ts if ts in text]
    if missing or present:
        raise BenchError(f"{tool}: GET {path} does not show the expected rows of the {page.title} "
                         f"(rows with ts {missing} missing, neighbouring rows with ts {present} shown)")


@dataclass
class Measurement:
    tool: str
    version: str
    page: str
    path: str
    base: str
    n: int = 0
    median_ms: float | None = None
    p90_ms: float | None = None
    size: int = 0
    rps: float | None = None
    wrk: dict[str, Any] | None = None
    note: str = ""


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank


def measure(client: Client, tool: str, version: str, page: Page, path: str, label: str, args: argparse.Namespace,
            results: list[Measurement]) -> Measurement:
    """One warm-up request (content checked), then `--requests` timed ones (fewer for a very slow page)."""
    result = Measurement(tool, version, label, path, client.base)
    warm, status, body = client.timed_get(path)
    check_page(tool, page, path, status, body)
    result.size = len(body)
    n = args.requests
    if warm > SLOW_SECONDS and args.slow_requests < n:
        n = args.slow_requests
        result.note = f"warm-up took {warm:.1f} s, so {n} requests instead of {args.requests}"
    say(f"  {label:<44} warm-up {warm * 1000:9.1f} ms; measuring {n} requests ...")
    times = []
    for _ in range(n):
        seconds, status, body = client.timed_get(path)
        if status != 200:
            raise BenchError(f"{tool}: GET {path} answered {status} during the measurement")
        times.append(seconds * 1000)
    result.n, result.median_ms, result.p90_ms = n, statistics.median(times), p90(times)
    say(f"  {'':<44} median {result.median_ms:9.1f} ms   p90 {result.p90_ms:9.1f} ms   {len(body) / 1024:.0f} KiB")
    results.append(result)
    return result


WRK_PATTERNS = {
    "requests": r"(\d+) requests in",
    "rps": r"Requests/sec:\s+([\d.]+)",
    "non_2xx_3xx": r"Non-2xx or 3xx responses:\s+(\d+)",
    "socket_errors": r"Socket errors:\s+(.+)",
    "read": r"requests in [\d.]+\w+, ([\d.]+[KMGT]?B) read",
}
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}  # wrk's units are binary


def wrk_bytes(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?B)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def run_wrk(result: Measurement, cookie: str, args: argparse.Namespace) -> None:
    url = result.base + result.path
    argv = ["wrk", f"-t{args.wrk_threads}", f"-c{args.wrk_connections}", f"-d{args.wrk_duration}s",
            "--timeout", f"{args.wrk_timeout}s"]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    argv.append(url)
    say(f"  wrk on {result.page}: {args.wrk_threads} threads, {args.wrk_connections} connections, "
        f"{args.wrk_duration} s ...")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.wrk_duration + args.wrk_timeout + 60,
                          check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed on {url}: {done.stderr.strip() or done.stdout.strip()}")
    found: dict[str, Any] = {}
    for key, pattern in WRK_PATTERNS.items():
        match = re.search(pattern, done.stdout)
        found[key] = match.group(1) if match else None
    found["requests"] = int(found["requests"] or 0)
    found["non_2xx_3xx"] = int(found["non_2xx_3xx"] or 0)
    found["output"] = done.stdout.strip()
    found["command"] = shlex.join(argv).replace(cookie, "<session cookies>") if cookie else shlex.join(argv)
    if found["rps"] is None:
        raise BenchError(f"cannot read wrk's output for {url}:\n{done.stdout}")
    result.rps = float(found["rps"])
    result.wrk = found
    problems = []
    if found["requests"] == 0:
        problems.append(f"no request completed within {args.wrk_duration} s")
    elif found["read"]:
        # wrk counts redirects as successes: responses much smaller than the page (a redirect to the
        # login page, say) mean it measured something else.
        average = wrk_bytes(found["read"]) / found["requests"]
        if average < 0.8 * result.size:
            raise BenchError(f"{result.tool}: wrk's responses average {average:,.0f} bytes, the page has "
                             f"{result.size:,}: it was not served the page (a redirect to the login page?)")
    if found["non_2xx_3xx"]:
        problems.append(f"{found['non_2xx_3xx']} of {found['requests']} responses were errors")
    if found["socket_errors"]:
        problems.append(f"socket errors: {found['socket_errors']}")
    if problems:
        result.note = "; ".join(filter(None, [result.note, "wrk: " + ", ".join(problems)]))
    say(f"  {'':<44} {result.rps:9.1f} requests/s ({found['requests']} requests"
        + (f"; {'; '.join(problems)}" if problems else "") + ")")


# --- the tools ------------------------------------------------------------------------------------------------
def clean_env() -> dict[str, str]:
    """The environment for every server: no BASTION_* setting of the user's leaks into the benchmark."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}


def peer_versions() -> dict[str, str]:
    python = PEERS_BIN / "python"
    if not python.exists():
        raise BenchError(f"{python.parent.parent} is missing: run bench/run (it installs Datasette and sqlite-web)")
    code = ("import json, sqlite3; from importlib.metadata import version; "
            "print(json.dumps({'datasette': version('datasette'), 'sqlite-web': version('sqlite-web'), "
            "'sqlite': sqlite3.sqlite_version}))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"cannot read the peers' versions from {python}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def bastion_version() -> dict[str, str]:
    code = ("import json, sqlite3; from importlib.metadata import version; "
            "print(json.dumps({'bastion': version('bastion'), 'django': version('django'), "
            "'gunicorn': version('gunicorn'), 'sqlite': sqlite3.sqlite_version}))")
    done = subprocess.run([str(BASTION_BIN / "python"), "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"cannot read Bastion's version: {done.stderr.strip()}")
    info = json.loads(done.stdout)
    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True, check=False)
    info["git"] = git.stdout.strip() or "unknown"
    return info


@dataclass
class Bastion:
    data: Dataset
    data_dir: Path = DATA / "bastion"
    env: dict[str, str] = field(default_factory=dict)
    connection_id: int = 0
    cursors: dict[str, str] | None = None
    cursor_error: str | None = None
    password: str = ""
    commands: list[str] = field(default_factory=list)

    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    @property
    def key(self) -> Path:
        return self.data_dir / "tls" / "key.pem"

    def run(self, *argv: str, show: str | None = None) -> str:
        command = [str(BASTION_BIN / "bastion"), "--data-dir", str(self.data_dir), *argv]
        self.commands.append(show or shlex.join(command))
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise BenchError(f"`{shlex.join(command)}` failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def setup(self) -> None:
        """A fresh data directory, the admin with a known password, the file registered, the cursors sealed."""
        self.env = clean_env() | {"BASTION_SQLITE_ROOTS": str(self.data.path.parent)}
        shutil.rmtree(self.data_dir, ignore_errors=True)
        password_file = DATA / "bastion-admin.password"
        self.password = secrets.token_urlsafe(24)
        password_file.unlink(missing_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        say("Bastion: initialising a throw-away data directory ...")
        self.run("init", "--no-demo", "--admin-user", ADMIN_USER, "--admin-password-file", str(password_file))
        spec = {"admin": ADMIN_USER, "name": CONNECTION_NAME, "path": str(self.data.path),
                "cursors": {"deep": self.data.pk_cursor, "deep_ts": self.data.ts_cursor}}
        helper = [str(BASTION_BIN / "python"), str(BENCH / "bastion_helper.py"), json.dumps(spec)]
        env = self.env | {"BASTION_DATA_DIR": str(self.data_dir)}
        self.commands.append(f"BASTION_DATA_DIR={self.data_dir} BASTION_SQLITE_ROOTS={self.data.path.parent} "
                             f"{BASTION_BIN / 'python'} bench/bastion_helper.py '<spec>'  "
                             "# create_connection() + explorer.browse.cursor_token('after', ...)")
        done = subprocess.run(helper, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise BenchError(f"registering the database in Bastion failed:\n{done.stdout}{done.stderr}")
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        self.connection_id = answer["connection_id"]
        self.cursors, self.cursor_error = answer["cursors"], answer["cursor_error"]
        say(f"  registered {self.data.path.name} as connection #{self.connection_id} ({CONNECTION_NAME!r})")

    def server(self, port: int) -> Server:
        argv = [str(BASTION_BIN / "bastion"), "--data-dir", str(self.data_dir), "serve", "--host", "127.0.0.1",
                "--port", str(port)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.append("--allow-root")  # as `make run` does when run as root
        self.commands.append(shlex.join(argv))
        return Server("bastion", argv, self.env, port)

    def login(self, client: Client) -> str:
        """Sign in as a browser does; returns the Cookie header value for every later request."""
        status, headers, body = client.request("GET", "/accounts/login/")
        if status != 200:
            raise BenchError(f"Bastion: GET /accounts/login/ answered {status}")
        jar = cookies_from(headers)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
        if BASTION_CSRF_COOKIE not in jar or not match:
            raise BenchError(f"Bastion: the login page set no {BASTION_CSRF_COOKIE} cookie or has no CSRF token")
        form = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1).decode(), "login": ADMIN_USER,
                                       "password": self.password})
        origin = client.base
        status, headers, body = client.request("POST", "/accounts/login/", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Origin": origin,
            "Referer": origin + "/accounts/login/", "Cookie": cookie_header(jar)})
        jar |= cookies_from(headers)
        if status not in (302, 303) or BASTION_SESSION_COOKIE not in jar:
            raise BenchError(f"Bastion: signing in as {ADMIN_USER!r} failed (POST /accounts/login/ answered "
                             f"{status}{', no session cookie' if BASTION_SESSION_COOKIE not in jar else ''})")
        cookie = cookie_header(jar)
        status, headers, _ = client.request("GET", "/", headers={"Cookie": cookie})
        if status != 200:
            raise BenchError(f"Bastion: the home page answered {status} after signing in "
                             f"(Location: {headers.get('Location')})")
        return cookie

    def paths(self) -> dict[str, str]:
        base = f"/db/{self.connection_id}/table/?t=events"
        paths = {"first": base}
        if self.cursors:
            paths["deep"] = f"{base}&after={urllib.parse.quote(self.cursors['deep'], safe='')}"
            paths["deep_ts"] = f"{base}&sort=ts&after={urllib.parse.quote(self.cursors['deep_ts'], safe='')}"
        return paths


def cookies_from(headers: http.client.HTTPMessage) -> dict[str, str]:
    jar: dict[str, str] = {}
    for line in headers.get_all("Set-Cookie") or []:
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(line)
        jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


def tilde_encode(text: str) -> str:
    """Datasette's encoding of a value inside a path or a `_next` token (datasette.utils.tilde_encode)."""
    safe = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
    return "".join(chr(b) if b in safe else "+" if b == 32 else f"~{b:02X}" for b in text.encode())


# --- running -------------------------------------------------------------------------------------------------
@dataclass
class Run:
    args: argparse.Namespace
    data: Dataset
    tls: ssl.SSLContext | None = None
    results: list[Measurement] = field(default_factory=list)
    commands: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bastion: Bastion | None = None
    transfers: list[Any] = field(default_factory=list)  # transfer_bench.Transfer

    def peer_tls_args(self, tool: str) -> list[str]:
        if self.args.peers_http or self.bastion is None:
            return []
        cert, key = str(self.bastion.cert), str(self.bastion.key)
        return ["--ssl-certfile", cert, "--ssl-keyfile", key] if tool == "datasette" else ["-c", cert, "-k", key]

    def peer_tls(self) -> ssl.SSLContext | None:
        return None if self.args.peers_http or self.bastion is None else self.tls

    def find(self, tool: str, page: str) -> Measurement | None:
        return next((r for r in self.results if r.tool == tool and r.page == page and r.median_ms is not None), None)


def run_bastion(run: Run) -> None:
    data, args = run.data, run.args
    bastion = run.bastion = Bastion(data)
    info = bastion_version()
    version = f"{info['bastion']} ({info['git']})"
    run.versions["Bastion"] = (f"{version}; Django {info['django']}, gunicorn {info['gunicorn']}, "
                               f"SQLite {info['sqlite']}")
    bastion.setup()
    run.commands["Bastion"] = bastion.commands
    run.tls = ssl.create_default_context(cafile=str(bastion.cert))  # its self-signed certificate, verified
    if args.skip_bastion:
        return
    port = free_port()
    server = bastion.server(port)
    server.start()
    client = Client(port, run.tls)
    try:
        say(f"Bastion: serving https://127.0.0.1:{port}/ (log: {server.log.relative_to(ROOT)})")
        server.wait_ready(client, "/accounts/login/")
        cookie = bastion.login(client)
        say(f"  signed in as {ADMIN_USER!r}: the session cookie goes with every measured request")
        client.cookie = cookie
        paths = bastion.paths()
        status, headers, _ = client.request("GET", paths["first"])
        if status == 404:
            raise ExplorerMissing(f"GET {paths['first']} answered 404")
        if status != 200:
            raise BenchError(f"Bastion: GET {paths['first']} answered {status}"
                             + (f" (Location: {headers['Location']})" if headers.get("Location") else ""))
        if not bastion.cursors:
            raise BenchError(f"Bastion: cannot make the deep-page cursors: {bastion.cursor_error}")
        first = measure(client, "Bastion", version, data.pages["first"], paths["first"], "first page", args,
                        run.results)
        measure(client, "Bastion", version, data.pages["deep"], paths["deep"], data.pages["deep"].title, args,
                run.results)
        measure(client, "Bastion", version, data.pages["deep_ts"], paths["deep_ts"], data.pages["deep_ts"].title,
                args, run.results)
        if not args.skip_wrk:
            run_wrk(first, cookie, args)
            status, _, body = client.request("GET", paths["first"])  # still signed in, still the right page?
            check_page("Bastion", data.pages["first"], paths["first"], status, body)
    finally:
        client.close()
        server.stop()


def run_datasette(run: Run) -> None:
    data, args = run.data, run.args
    version = run.versions["Datasette"]
    port = free_port()
    argv = [str(PEERS_BIN / "datasette"), "serve", "-i", str(data.path), "-h", "127.0.0.1", "-p", str(port),
            "--setting", "default_page_size", str(PAGE_SIZE), *run.peer_tls_args("datasette")]
    run.commands["Datasette"] = [shlex.join(argv)]
    server = Server("datasette", argv, clean_env(), port)
    server.start()
    client = Client(port, run.peer_tls())
    db = data.path.stem
    try:
        say(f"Datasette: serving {client.base}/ (log: {server.log.relative_to(ROOT)})")
        server.wait_ready(client, "/-/versions.json")
        table = f"/{db}/events"
        # Datasette's own "next" tokens of page 1 show the format the deep URLs below are built with.
        status, _, body = client.request("GET", f"{table}.json?_sort=ts&_nocount=1&_nosuggest=1")
        if status != 200:
            raise BenchError(f"Datasette: GET {table}.json?_sort=ts answered {status}")
        page1 = json.loads(body)
        last = page1["rows"][-1]
        last_ts, last_id = (last["ts"], last["id"]) if isinstance(last, dict) else (last[1], last[0])
        if page1.get("next") != f"{tilde_encode(last_ts)},{last_id}":
            raise BenchError(f"Datasette's _next format is not what this script expects: got {page1.get('next')!r}, "
                             f"expected {tilde_encode(last_ts)},{last_id}")
        status, _, body = client.request("GET", f"{table}.json?_nocount=1&_nosuggest=1")
        by_id = json.loads(body) if status == 200 else {}
        if by_id.get("next") != str(PAGE_SIZE):
            raise BenchError(f"Datasette's page 1 _next is {by_id.get('next')!r}, expected {PAGE_SIZE!r}: "
                             "its pagination is not the keyset on id this script expects")
        deep_next = str(data.pk_cursor[0])
        ts_next = f"{tilde_encode(data.ts_cursor[0])},{data.ts_cursor[1]}"
        lean = "_nocount=1&_nosuggest=1"
        pages = [
            ("first", "first page (default)", table),
            ("first", "first page (lean)", f"{table}?_nosuggest=1&_nocount=1"),
            ("deep", data.pages["deep"].title + " (default)", f"{table}?_next={deep_next}"),
            ("deep", data.pages["deep"].title + " (lean)", f"{table}?_next={deep_next}&{lean}"),
            ("deep_ts", data.pages["deep_ts"].title + " (default)",
             f"{table}?" + urllib.parse.urlencode({"_sort": "ts", "_next": ts_next})),
            ("deep_ts", data.pages["deep_ts"].title + " (lean)",
             f"{table}?" + urllib.parse.urlencode({"_sort": "ts", "_next": ts_next}) + f"&{lean}"),
        ]
        measured = [measure(client, "Datasette", version, data.pages[key], path, label, args, run.results)
                    for key, label, path in pages]
        if not args.skip_wrk:
            run_wrk(measured[0], "", args)
            run_wrk(measured[1], "", args)
    finally:
        client.close()
        server.stop()


def run_sqlite_web(run: Run) -> None:
    data, args = run.data, run.args
    version = run.versions["sqlite-web"]
    port = free_port()
    argv = [str(PEERS_BIN / "sqlite_web"), str(data.path), "-H", "127.0.0.1", "-p", str(port), "--no-browser",
            "--read-only", *run.peer_tls_args("sqlite-web")]
    run.commands["sqlite-web"] = [shlex.join(argv)]
    server = Server("sqlite-web", argv, clean_env(), port)
    server.start()
    client = Client(port, run.peer_tls())
    try:
        say(f"sqlite-web: serving {client.base}/ (log: {server.log.relative_to(ROOT)})")
        server.wait_ready(client, "/")
        content = "/events/content/"  # /events/ is the structure tab; the rows are on the content tab
        deep_page = data.deep // PAGE_SIZE + 1  # page p shows rows (p-1)*50+1 .. p*50
        # ?ordering=N sorts by the N-th column (1-based): ts is the second.
        pages = [
            ("first", "first page", content),
            ("deep", data.pages["deep"].title, f"{content}?page={deep_page}"),
            ("deep_ts", data.pages["deep_ts"].title, f"{content}?ordering=2&page={deep_page}"),
        ]
        measured = [measure(client, "sqlite-web", version, data.pages[key], path, label, args, run.results)
                    for key, label, path in pages]
        if not args.skip_wrk:
            run_wrk(measured[0], "", args)
    finally:
        client.close()
        server.stop()


# --- the report -------------------------------------------------------------------------------------------------
def ratios(run: Run) -> dict[str, float | None]:
    def median(tool: str, page: str) -> float | None:
        found = run.find(tool, page)
        return found.median_ms if found else None

    def rps(tool: str, page: str) -> float | None:
        found = run.find(tool, page)
        return found.rps if found else None

    deep, deep_ts = run.data.pages["deep"].title, run.data.pages["deep_ts"].title
    pairs = {
        "deep_over_first": (median("Bastion", deep), median("Bastion", "first page")),
        "first_vs_datasette": (median("Bastion", "first page"), median("Datasette", "first page (default)")),
        "first_vs_datasette_lean": (median("Bastion", "first page"), median("Datasette", "first page (lean)")),
        "sorted_deep_vs_sqliteweb": (median("Bastion", deep_ts), median("sqlite-web", deep_ts)),
        "rps_vs_datasette": (rps("Bastion", "first page"), rps("Datasette", "first page (default)")),
    }
    values = {name: (a / b if a is not None and b else None) for name, (a, b) in pairs.items()}
    return values | transfer().values(run)


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def target_text(name: str, value: float | None) -> str:
    op, bound = TARGETS[name]
    if value is None:
        return f"target {op} {bound:g}: not measured"
    met = value <= bound if op == "<=" else value < bound if op == "<" else value >= bound
    return f"target {op} {bound:g}: {'met' if met else 'NOT met'}"


def result_line(values: dict[str, float | None]) -> str:
    return "RESULT " + " ".join(f"{name}={'n/a' if v is None else f'{v:.3f}'}" for name, v in values.items())


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False).stdout.strip()
    return [f"CPUs: {os.cpu_count()} ({model})", f"Memory: {memory}", f"`uname -a`: `{uname or platform.platform()}`",
            f"Python: {platform.python_version()}"]


def write_report(run: Run, path: Path, values: dict[str, float | None], started: dt.datetime) -> None:
    args, data = run.args, run.data
    size_mb = data.path.stat().st_size / 1e6
    lines = [
        "# Bastion vs Datasette vs sqlite-web",
        "",
        f"Generated by `bench/run{' --quick' if args.quick else ''}` (`make bench`) on "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}, all tools one after the other on this machine, "
        "against the same file. Re-run it rather than edit this file.",
        "",
        "## Machine",
        "",
        *[f"- {line}" for line in machine()],
        "",
        "## Data",
        "",
        f"- `{data.path.relative_to(ROOT)}`: {data.rows:,} rows, {size_mb:,.0f} MB, built by `bench/bench.py` "
        "with one recursive-CTE INSERT (deterministic, same file on every machine)",
        f"- `{SCHEMA_SQL}`, `CREATE INDEX events_ts ON events (ts)`",
        "- ts: distinct timestamps over 2024-2025, scattered across ids (sorting by ts is a different order); "
        "every 7th note is NULL",
        f"- Deep pages start after row {data.deep:,} of the order: id > {data.pk_cursor[0]:,}; sorted by ts, "
        f"after (ts, id) = ({data.ts_cursor[0]!r}, {data.ts_cursor[1]}). Every page shows {PAGE_SIZE} rows, "
        "and its warm-up response was checked to hold the expected first and last row and not their neighbours.",
        "",
        "## Versions",
        "",
        *[f"- {tool}: {version}" for tool, version in run.versions.items()],
        "",
        "## Results",
        "",
        f"Latency: one warm-up request, then {args.requests} sequential requests on one keep-alive connection "
        "(time from sending the request to the last byte of the body), by Python's http.client on the same machine. "
        f"Pages whose warm-up took over {SLOW_SECONDS:g} s are measured with {args.slow_requests} requests (see n). "
        f"rps: `wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_duration}s "
        f"--timeout {args.wrk_timeout}s` on the first page.",
        "",
        "| tool | version | page | URL | n | median ms | p90 ms | KiB | rps |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in run.results:
        lines.append(f"| {r.tool} | {r.version} | {r.page} | `{r.path}` | {r.n} | {fmt(r.median_ms)} | "
                     f"{fmt(r.p90_ms)} | {r.size / 1024:,.0f} | {fmt(r.rps)} |")
    notes = [f"{r.tool}, {r.page}: {r.note}" for r in run.results if r.note]
    lines.append("")
    if run.find("Bastion", data.pages["deep"].title):
        lines += ["Bastion's cursors (`after=`) are long opaque tokens; the table shortens them.", ""]
    if notes or run.notes or run.errors:
        lines += ["### Notes", "", *[f"- {n}" for n in [*run.notes, *notes]],
                  *[f"- ERROR: {e}" for e in run.errors], ""]
    lines += transfer().report_lines(run)
    lines += ["## Ratios", "", "| ratio | value | target |", "|---|---:|---|"]
    for name, value in values.items():
        lines.append(f"| {name} | {fmt(value, 3)} | {target_text(name, value)} |")
    lines += ["", "```", result_line(values), "```", "", "## How each tool was run", "",
              "Each server was started on a free port on 127.0.0.1, measured, and stopped before the next one "
              "started; the OS file cache was warmed by reading the file once before the first tool.", ""]
    lines += FAIRNESS
    lines.append("")
    for tool, commands in run.commands.items():
        lines += [f"{tool}:", "", "```sh", *commands, "```", ""]
    wrk_runs = [r for r in run.results if r.wrk]
    if wrk_runs:
        lines += ["## wrk output", ""]
        for r in wrk_runs:
            if r.wrk:
                lines += [f"{r.tool}, {r.page}:", "", "```", "$ " + r.wrk["command"], r.wrk["output"], "```", ""]
    text = "\n".join(lines).replace(f"{ROOT}/", "")  # commands as run from the repository root
    # The cursors are long and opaque: shorten them in the table so it stays readable.
    text = re.sub(r"(after=)([A-Za-z0-9_%\-=]{16})[A-Za-z0-9_%\-=]+", r"\1\2…", text)
    path.write_text(text.rstrip() + "\n")


FAIRNESS = [
    "- Same transport: the peers serve HTTPS with Bastion's self-signed certificate (their own TLS options), "
    "because Bastion serves only HTTPS; `--peers-http` runs them on plain HTTP instead.",
    "- Bastion: `bastion serve` as a user runs it (production mode, gunicorn gthread, its default worker "
    "count), a fresh data directory, a dedicated administrator signed in through the login form; every "
    "measured request carries the session cookie, so it goes through Bastion's whole middleware stack (session, "
    "idle timeout, access checks) as a browser's would.",
    "- Datasette: `-i` (immutable: the file is only read, no locking or change checks: its fastest documented "
    f"mode without a pre-computed inspect file), `default_page_size` {PAGE_SIZE} so that it shows the same "
    f"{PAGE_SIZE} rows as the others (its default is 100). \"default\" pages are what its own links give: "
    "a row count and facet suggestions on the first page, a count on later pages; \"lean\" adds "
    "`_nocount=1&_nosuggest=1`. Deep pages use its keyset `_next` tokens (`<id>`, or `<tilde-encoded ts>,<id>` "
    "with `_sort=ts`), in the format checked against its own page-1 link.",
    "- sqlite-web: its `sqlite_web` command (Flask's built-in threaded server) with `--read-only`; the rows are "
    "on `/events/content/` with offset pagination (`page=N`, 50 rows per page) and `ordering=2` (the second "
    "column, ts); it counts the table on every page.",
]


def print_summary(run: Run, values: dict[str, float | None]) -> None:
    say("")
    if run.results:
        say(f"{'tool':<11} {'page':<44} {'n':>3} {'median ms':>11} {'p90 ms':>11} {'rps':>9}")
    for r in run.results:
        say(f"{r.tool:<11} {r.page:<44} {r.n:>3} {fmt(r.median_ms):>11} {fmt(r.p90_ms):>11} {fmt(r.rps):>9}")
    for line in transfer().summary_lines(run):
        say(line)
    say("")
    for name, value in values.items():
        say(f"{name:<26} {fmt(value, 3):>10}   ({target_text(name, value)})")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ROWS:,} rows instead of {FULL_ROWS:,}; results in "
                             f"{QUICK_RESULTS.relative_to(ROOT)}")
    parser.add_argument("--rows", type=int, help="any other row count (results not written to bench/RESULTS.md)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (default 20)")
    parser.add_argument("--slow-requests", type=int, default=3,
                        help=f"timed requests for a page whose warm-up takes over {SLOW_SECONDS:g} s (default 3)")
    parser.add_argument("--wrk-duration", type=int, default=15)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=16)
    parser.add_argument("--wrk-timeout", type=int, default=60,
                        help="seconds before wrk gives up on a response (default 60; wrk's own is 2)")
    parser.add_argument("--skip-wrk", action="store_true")
    parser.add_argument("--peers-http", action="store_true", help="serve Datasette and sqlite-web over plain HTTP")
    parser.add_argument("--only", action="append", choices=["bastion", "datasette", "sqlite-web", "transfer"],
                        help="measure only this tool's pages, or only the imports and exports (repeatable); results "
                             "not written to bench/RESULTS.md")
    transfer().add_arguments(parser)
    args = parser.parse_args(argv)
    if args.only_transfer:
        args.only = [*(args.only or []), "transfer"]
    if args.requests < 1 or args.slow_requests < 1:
        parser.error("--requests and --slow-requests must be at least 1")
    args.skip_bastion = bool(args.only) and "bastion" not in args.only
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    # Ctrl+C raises KeyboardInterrupt even when started in the background, where SIGINT starts out ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    atexit.register(stop_all)
    started = dt.datetime.now(dt.UTC)
    if shutil.which("wrk") is None and not args.skip_wrk:
        raise BenchError("wrk is not installed: `apt-get install -y wrk` (or pass --skip-wrk)")
    if not (BASTION_BIN / "bastion").exists():
        raise BenchError(f"{BASTION_BIN / 'bastion'} is missing: run `make init` first")
    versions = peer_versions()
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    if rows < 4 * PAGE_SIZE:
        raise BenchError(f"--rows must be at least {4 * PAGE_SIZE}")
    data = build_dataset(rows)
    run = Run(args, data)
    run.versions["Bastion"] = "not measured"
    run.versions["Datasette"] = versions["datasette"]
    run.versions["sqlite-web"] = versions["sqlite-web"]
    say(f"Data: {data.path.relative_to(ROOT)}, {rows:,} rows; warming the OS file cache ...")
    warm_file_cache(data.path)

    steps = [("bastion", "Bastion", run_bastion), ("datasette", "Datasette", run_datasette),
             ("sqlite-web", "sqlite-web", run_sqlite_web)]
    if transfer().wanted(args):
        steps.append(("transfer", "Transfers", transfer().run_transfer))
    for key, name, step in steps:
        if args.only and key not in args.only and key != "bastion":
            continue  # Bastion's set-up runs anyway: the peers use its certificate
        try:
            step(run)
        except ExplorerMissing as exc:
            message = (f"Bastion's explorer is not available yet ({exc}): its pages were skipped. Sign-in and "
                       "connection registration worked.")
            say(message)
            run.notes.append(message)
        except BenchError as exc:
            message = str(exc) if str(exc).lower().startswith(name.lower()) else f"{name}: {exc}"
            say(f"ERROR: {message}")
            run.errors.append(message)
        say("")
    run.versions["Datasette"] += f" (SQLite {versions['sqlite']})"
    run.versions["sqlite-web"] += f" (SQLite {versions['sqlite']})"
    stop_all()

    values = ratios(run)
    print_summary(run, values)
    if args.only or args.rows:
        report = None
    else:
        report = QUICK_RESULTS if args.quick else RESULTS
        write_report(run, report, values, started)
    say("")
    say(f"Wrote {report.relative_to(ROOT)}." if report else "Partial run (--only/--rows): no report written.")
    for error in run.errors:
        say(f"ERROR: {error}")
    say(result_line(values))
    return 1 if run.errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as exc:
        stop_all()
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        stop_all()
        print("bench: interrupted; every server was stopped.", file=sys.stderr)
        sys.exit(130)
