"""Which test services this machine has: `python -m tests.services NAME` exits 0 when reachable."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request

SERVICES = {
    "postgresql": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
    "redis": ("127.0.0.1", 6379),
}
# pip-audit asks PyPI's JSON API per pinned version; a registry mirror that only
# serves packages answers 404 there, which is "unreachable" for our purpose.
VULNERABILITY_SERVICE = "https://pypi.org/pypi/django/5.2/json"


def reachable(name: str, timeout: float = 1.0) -> bool:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def vulnerability_service_reachable(timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(VULNERABILITY_SERVICE, timeout=timeout) as response:
            return "vulnerabilities" in json.load(response)
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    wanted = sys.argv[1]
    ok = vulnerability_service_reachable() if wanted == "pypi-audit" else reachable(wanted)
    sys.exit(0 if ok else 1)
