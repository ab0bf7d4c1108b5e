"""Clipping levels for failed logins (T14), kept in the metadata database.

The counters live in their own table (not the general cache) so that they are
exact under parallel requests (one atomic UPDATE each), are never evicted to
make room for other entries, and keep the window they were opened with. The
table is shared by every worker on every host.

Three counters, each a fixed window that expires by itself:
- per client network (an IPv4 address, or an IPv6 /64, which one host owns):
  too many failures from there -> refused for a cool-down, whatever account;
- per (account, network): the same for one account from one network;
- per account across all networks: never a hard lock (that would let anybody
  lock a user out); each further attempt is slowed by a growing, capped delay.

An attempt is counted *before* the password is checked and forgiven if it
succeeds, so a burst of parallel guesses cannot all slip under the limit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bastion.accounts.models import LoginCounter

MAX_EXPONENT = 16  # 0.25 s * 2**16 is far above any sane cap; bounds the arithmetic


def _digest(value: str) -> str:
    # Names and addresses are stored hashed: bounded length, nothing personal in the table.
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def client_network(ip: str) -> str:
    """The unit an attacker cannot multiply cheaply: an IPv4 address or an IPv6 /64."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def _keys(ip: str, username: str) -> tuple[str, str, str]:
    network = _digest(client_network(ip))
    account = _digest(username.strip().casefold())
    return f"ip:{network}", f"pair:{account}:{network}", f"acct:{account}"


def _bump(key: str, window: int) -> int:
    """One more in the window that ``key`` opened (a new window if it expired); the new count."""
    now = timezone.now()
    for _ in range(3):
        with transaction.atomic():
            if LoginCounter.objects.filter(key=key, expires_at__gt=now).update(count=F("count") + 1):
                return LoginCounter.objects.values_list("count", flat=True).get(key=key)
            LoginCounter.objects.filter(key=key, expires_at__lte=now).delete()
            try:
                with transaction.atomic():
                    LoginCounter.objects.create(key=key, count=1, expires_at=now + dt.timedelta(seconds=window))
                return 1
            except IntegrityError:
                continue  # another worker opened the window first: count in it
    raise RuntimeError(f"login counter {key} could not be updated")


def _count(key: str) -> int:
    return (LoginCounter.objects.filter(key=key, expires_at__gt=timezone.now())
            .values_list("count", flat=True).first() or 0)


def _block(key: str, seconds: int) -> None:
    until = timezone.now() + dt.timedelta(seconds=seconds)
    LoginCounter.objects.update_or_create(key=f"block:{key}", defaults={"count": 0, "expires_at": until})


@dataclass(frozen=True)
class Verdict:
    refused: bool
    reason: str = ""
    retry_after: int = 0


def check(ip: str, username: str) -> Verdict:
    """Whether a login attempt from ``ip`` for ``username`` may go ahead now."""
    ip_key, pair_key, _ = _keys(ip, username)
    until = (LoginCounter.objects.filter(key__in=[f"block:{ip_key}", f"block:{pair_key}"],
                                         expires_at__gt=timezone.now())
             .order_by("-expires_at").values_list("expires_at", flat=True).first())
    if until is None:
        return Verdict(False)
    retry = max(1, int((until - timezone.now()).total_seconds()))
    return Verdict(True, "too many failed logins from this address", retry)


def begin_attempt(ip: str, username: str) -> Verdict:
    """Count an attempt before its password is checked; refused over a clipping level."""
    ip_key, pair_key, _ = _keys(ip, username)
    over_ip = _bump(ip_key, settings.LOGIN_IP_WINDOW) > settings.LOGIN_IP_LIMIT
    over_pair = _bump(pair_key, settings.LOGIN_ACCOUNT_IP_WINDOW) > settings.LOGIN_ACCOUNT_IP_LIMIT
    if over_ip or over_pair:
        return Verdict(True, "too many failed logins from this address", settings.LOGIN_COOLDOWN)
    return check(ip, username)


def attempt_succeeded(ip: str, username: str) -> None:
    """Forgive the attempt counted by begin_attempt (only that one: earlier failures stay)."""
    ip_key, pair_key, _ = _keys(ip, username)
    LoginCounter.objects.filter(key__in=[ip_key, pair_key], count__gt=0).update(count=F("count") - 1)


def attempt_failed(ip: str, username: str) -> list[str]:
    """Record a failed attempt; returns the clipping levels it has just reached."""
    ip_key, pair_key, account_key = _keys(ip, username)
    crossed = []
    if _count(ip_key) >= settings.LOGIN_IP_LIMIT:
        _block(ip_key, settings.LOGIN_COOLDOWN)
        crossed.append("ip")
    if _count(pair_key) >= settings.LOGIN_ACCOUNT_IP_LIMIT:
        _block(pair_key, settings.LOGIN_COOLDOWN)
        crossed.append("account_ip")
    if _bump(account_key, settings.LOGIN_ACCOUNT_WINDOW) == settings.LOGIN_ACCOUNT_DELAY_AFTER:
        crossed.append("account_delay")
    # Expired rows are only clutter; an index keeps this cheap.
    LoginCounter.objects.filter(expires_at__lt=timezone.now() - dt.timedelta(hours=1)).delete()
    return crossed


def delay_for(username: str) -> float:
    """Seconds to slow an attempt for an account that is failing from many places."""
    excess = _count(_keys("", username)[2]) - settings.LOGIN_ACCOUNT_DELAY_AFTER
    if excess < 0:
        return 0.0
    return float(min(settings.LOGIN_MAX_DELAY, 0.25 * 2 ** min(excess, MAX_EXPONENT)))
