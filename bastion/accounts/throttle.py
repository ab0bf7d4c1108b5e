"""Clipping levels for failed logins (T14), kept in the shared cache.

Three counters, each a fixed window that expires by itself:
- per client IP: too many failures from one address -> that address is refused
  for a cool-down, whatever account it tries;
- per (account, IP): the same for one account from one address;
- per account across all IPs: never a hard lock (that would let anybody lock a
  user out); each further attempt is slowed by a growing, capped delay.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

PREFIX = "bastion:login"


def _digest(value: str) -> str:
    # Account names and addresses go into cache keys hashed: bounded length,
    # no characters a cache backend could object to.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _account(username: str) -> str:
    return _digest(username.strip().casefold())


def _bump(key: str, window: int) -> int:
    """Count one more failure in the window; returns the new count."""
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # the window expired between add and incr
        cache.add(key, 1, timeout=window)
        return 1


@dataclass(frozen=True)
class Verdict:
    refused: bool
    reason: str = ""
    retry_after: int = 0


def check(ip: str, username: str) -> Verdict:
    """Whether a login attempt from ``ip`` for ``username`` may go ahead now."""
    blocked = cache.get_many([f"{PREFIX}:block:ip:{_digest(ip)}",
                              f"{PREFIX}:block:pair:{_account(username)}:{_digest(ip)}"])
    if blocked:
        until = max(blocked.values())
        return Verdict(True, "too many failed logins from this address",
                       max(1, int(until - time.time())))
    return Verdict(False)


def delay_for(username: str) -> float:
    """Seconds to slow an attempt for an account that is failing from many places."""
    failures = cache.get(f"{PREFIX}:acct:{_account(username)}", 0)
    excess = failures - settings.LOGIN_ACCOUNT_DELAY_AFTER
    if excess < 0:
        return 0.0
    return float(min(settings.LOGIN_MAX_DELAY, 0.25 * 2**excess))


def record_failure(ip: str, username: str) -> list[str]:
    """Count a failed login; returns the clipping levels it has just crossed."""
    crossed = []
    cooldown = settings.LOGIN_COOLDOWN
    until = time.time() + cooldown
    ip_count = _bump(f"{PREFIX}:ip:{_digest(ip)}", settings.LOGIN_IP_WINDOW)
    if ip_count >= settings.LOGIN_IP_LIMIT:
        cache.set(f"{PREFIX}:block:ip:{_digest(ip)}", until, timeout=cooldown)
        if ip_count == settings.LOGIN_IP_LIMIT:
            crossed.append("ip")
    pair_count = _bump(f"{PREFIX}:pair:{_account(username)}:{_digest(ip)}",
                       settings.LOGIN_ACCOUNT_IP_WINDOW)
    if pair_count >= settings.LOGIN_ACCOUNT_IP_LIMIT:
        cache.set(f"{PREFIX}:block:pair:{_account(username)}:{_digest(ip)}", until, timeout=cooldown)
        if pair_count == settings.LOGIN_ACCOUNT_IP_LIMIT:
            crossed.append("account_ip")
    account_count = _bump(f"{PREFIX}:acct:{_account(username)}", settings.LOGIN_ACCOUNT_WINDOW)
    if account_count == settings.LOGIN_ACCOUNT_DELAY_AFTER:
        crossed.append("account_delay")
    return crossed
