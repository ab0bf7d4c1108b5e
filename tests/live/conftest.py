"""Fixtures for tests that talk to a real `bastion serve` process over HTTPS.

`live_bastion` initialises a throw-away data directory with the real CLI and
serves it with the real production server (gunicorn + TLS) on a free port.
`browser_page` drives Debian's Chromium through Playwright and fails the test
on any console error or Content Security Policy violation (T05).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
BASTION = Path(sys.executable).with_name("bastion")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0
DESKTOP = {"width": 1280, "height": 800}


@dataclass
class LiveBastion:
    """A running Bastion server and how to reach it."""

    base_url: str
    host: str
    port: int
    http_port: int
    admin_username: str
    one_time_password: str
    data_dir: Path
    env: dict[str, str]
    log_file: Path

    def url(self, path: str) -> str:
        return self.base_url + path

    def cli(self, *args: str) -> str:
        """Run `bastion ARGS` against this server's data directory; its output."""
        return run_cli(self.data_dir, self.env, *args)

    def create_admin(self, username: str, password: str) -> None:
        """Another administrator with a known (not one-time) password, for independent tests."""
        password_file = self.data_dir / f"{username}.password"
        password_file.write_text(password + "\n", encoding="utf-8")
        try:
            self.cli("createadmin", username, "--password-file", str(password_file))
        finally:
            password_file.unlink()


def run_cli(data_dir: Path, env: dict[str, str], *args: str) -> str:
    """Run `bastion --data-dir DATA_DIR ARGS`; fails the test with its output if it fails."""
    result = subprocess.run([str(BASTION), "--data-dir", str(data_dir), *args], env=env,
                            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    if result.returncode != 0:
        pytest.fail(f"bastion {' '.join(args)} exited with {result.returncode}:\n"
                    f"{result.stdout}{result.stderr}")
    return result.stdout


def _clean_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment minus anything that would change what the server does."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BASTION_") and k != "DJANGO_SETTINGS_MODULE"}
    env["BASTION_DATA_DIR"] = str(data_dir)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    state = f"exited with {proc.returncode}" if proc.poll() is not None else "is not listening"
    pytest.fail(f"bastion serve {state} after {START_TIMEOUT}s at most; its output:\n"
                + log_file.read_text(errors="replace")[-3000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # gunicorn master and its workers share the group
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def live_bastion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBastion]:
    """`bastion init` then `bastion serve` on a free port; stopped at the end of the session."""
    root = tmp_path_factory.mktemp("live-bastion")
    data_dir = root / "data"
    otp_file = root / "one-time-password"
    env = _clean_env(data_dir)
    run_cli(data_dir, env, "init", "--one-time-password-file", str(otp_file))
    port, http_port = _free_port(), _free_port()
    env["BASTION_SITE_URL"] = f"https://127.0.0.1:{port}"
    log_file = root / "server.log"
    argv = [str(BASTION), "--data-dir", str(data_dir), "serve", "--port", str(port),
            "--workers", "2", "--http-redirect-port", str(http_port)]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    with log_file.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(proc, port, log_file)
        yield LiveBastion(
            base_url=f"https://127.0.0.1:{port}", host="127.0.0.1", port=port, http_port=http_port,
            admin_username="admin", one_time_password=otp_file.read_text(encoding="utf-8").strip(),
            data_dir=data_dir, env=env, log_file=log_file,
        )
    finally:
        _stop(proc)


# --- browser ---------------------------------------------------------------------------
@dataclass
class ConsoleWatch:
    """Console errors, CSP violations and uncaught page errors seen by every watched page."""

    problems: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text} ({message.location})")

    def allow(self, fragment: str) -> None:
        """Expect console errors containing ``fragment`` (e.g. the 404 of a missing page)."""
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [p for p in self.problems
                if "Content Security Policy" in p or not any(a in p for a in self.allowed)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium, one per test module.

    Module scope on purpose: while Playwright's sync API runs, its event loop
    counts as running in this thread, which would make Django's ORM refuse to
    work in any later, unrelated test.
    """
    if not CHROMIUM.exists():
        message = "chromium not installed: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console_watch() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def new_page(chromium: Browser, console_watch: ConsoleWatch) -> Iterator[Callable[..., Page]]:
    """Factory of watched pages, each in a fresh context (cookie jar); extra args go to new_context.

    Fails the test at teardown if any page logged a console error or a CSP violation.
    """
    contexts: list[BrowserContext] = []

    def make(**context_options: Any) -> Page:
        options = {"ignore_https_errors": True, "viewport": DESKTOP, **context_options}
        context = chromium.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        console_watch.attach(page)
        return page

    yield make
    for context in contexts:
        context.close()
    problems = console_watch.unexpected()
    if problems:
        pytest.fail("browser console errors or CSP violations:\n" + "\n".join(problems))


@pytest.fixture
def browser_page(new_page: Callable[..., Page]) -> Page:
    """A watched Playwright page at 1280x800 in headless Chromium."""
    return new_page()


# --- second factor -------------------------------------------------------------------------
# Administrators must use two-factor authentication (the Admin role requires it by default), so a
# browser test that signs one in enrols an authenticator app the first time, and types a code after.
MFA_INDEX = "/accounts/2fa/"
MFA_STEP = "/accounts/2fa/authenticate/"
REAUTHENTICATE = "/accounts/reauthenticate/"
RECOVERY_CODES = "/accounts/2fa/recovery-codes/"
TOTP_SECRETS: dict[str, str] = {}  # username -> authenticator secret, for the session's live server
_LAST_WINDOW: dict[str, int] = {}


def totp_code(username: str) -> str:
    """A code of ``username``'s authenticator app that the server has not seen yet.

    A code is accepted once (allauth refuses a replay), so a second sign-in within the same
    30-second window waits for the next code.
    """
    totp = pyotp.TOTP(TOTP_SECRETS[username])
    window = int(time.time()) // totp.interval
    if _LAST_WINDOW.get(username) == window:
        time.sleep(totp.interval - time.time() % totp.interval + 0.2)
        window += 1
    _LAST_WINDOW[username] = window
    return totp.now()


def enrol_totp(page: Page, username: str, password: str) -> str:
    """From the two-factor page, set up an authenticator app the way a user does; returns its secret.

    allauth asks for the password again first (a change of sign-in methods needs a re-authentication).
    """
    page.get_by_role("link", name="Activate").click()
    page.wait_for_url(re.compile(r"/accounts/(reauthenticate|2fa/totp/activate)/"))
    if urlsplit(page.url).path == REAUTHENTICATE:
        page.locator("input[name=password]").fill(password)
        page.locator("main form").get_by_role("button").click()
        page.wait_for_url(re.compile(r"/accounts/2fa/totp/activate/"))
    secret = page.locator("#authenticator_secret").inner_text().strip()
    TOTP_SECRETS[username] = secret
    page.locator("input[name=code]").fill(totp_code(username))
    page.locator("main form").get_by_role("button", name="Activate").click()
    page.wait_for_url("**" + RECOVERY_CODES)  # the POST, then its redirect, have both finished
    # Until this is ticked, the page asks before it is left (a beforeunload prompt).
    page.get_by_label("I have saved my recovery codes").check()
    return secret


def pass_second_factor(page: Page, username: str, password: str) -> None:
    """After the password step: type a code when asked for one, or enrol when the role requires it.

    Enrolment ends on the recovery-codes page; the user then goes to the home page, where a
    sign-in without a `next` page would have taken them.
    """
    path = urlsplit(page.url).path
    if path == MFA_STEP:
        page.locator("input[name=code]").fill(totp_code(username))
        page.get_by_role("button", name="Sign In", exact=True).click()
        page.wait_for_url(lambda url: urlsplit(url).path != MFA_STEP)
    elif path == MFA_INDEX:
        enrol_totp(page, username, password)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
        page.goto(origin + "/")
