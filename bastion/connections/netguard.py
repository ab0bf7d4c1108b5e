"""Where Bastion may connect to (T23: server-side request forgery through connection settings).

A target host is checked by what it resolves to, not by how it is spelled:
``2852039166``, ``0xa9fea9fe`` and ``::ffff:169.254.169.254`` are all the cloud
metadata service. Some addresses are refused always; when the operator sets
TARGET_HOSTS_ALLOWED, everything else must match it too. The engines connect to
the addresses vetted here, so a DNS answer that changes afterwards (rebinding)
cannot redirect the connection.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused whatever the allowlist says: nobody has a database there, and an
# attacker gains a lot by reaching it.
ALWAYS_REFUSED: dict[str, tuple[IPNetwork, ...]] = {
    "a cloud metadata address": (
        ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack, Oracle
        ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
        ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
    ),
    "a link-local address": (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10")),
    "an unspecified address": (ipaddress.ip_network("0.0.0.0/8"), ipaddress.ip_network("::/128")),
    "a multicast or broadcast address": (
        ipaddress.ip_network("224.0.0.0/4"),
        ipaddress.ip_network("255.255.255.255/32"),
        ipaddress.ip_network("ff00::/8"),
    ),
}
# IPv6 forms that carry an IPv4 address a kernel or gateway will reach.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# A DNS name (letters, digits, hyphens, underscores for service records) or an IP literal;
# anything else (commas, slashes, spaces) would mean something else to a driver:
# libpq reads "a,b" as two hosts and "/dir" as a Unix socket directory.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(?:\.{_LABEL})*\.?$")


class TargetRefused(Exception):
    """The host may not be connected to; the message says why, in plain words."""


def allowed_targets() -> list[str]:
    """TARGET_HOSTS_ALLOWED: host names and CIDR networks; empty means any host not always refused."""
    return [str(item).strip() for item in getattr(settings, "TARGET_HOSTS_ALLOWED", []) if str(item).strip()]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is always refused, or None."""
    candidates = [address]
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        candidates.append(embedded)
    for reason, networks in ALWAYS_REFUSED.items():
        for candidate in candidates:
            if any(candidate.version == net.version and candidate in net for net in networks):
                return reason
    return None


def _parse_allowlist(entries: Iterable[str]) -> tuple[set[str], list[IPNetwork]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def _name_allowed(host: str, names: set[str]) -> bool:
    host = host.lower().rstrip(".")
    # "*.db.example" allows every name below db.example, not db.example itself.
    return host in names or any(n.startswith("*.") and host.endswith(n[1:]) for n in names)


def _resolve(host: str, port: int | None) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host name {host!r} could not be resolved.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        # Strip an IPv6 zone ("fe80::1%eth0"); the address itself is what is checked.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(f"The host name {host!r} has no address.")
    return addresses


def check_host_syntax(host: str) -> str:
    """``host`` stripped, when it is a plain host name or IP address; raises TargetRefused otherwise."""
    host = (host or "").strip()
    if not host:
        raise TargetRefused("A host name or IP address is required.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host.isascii():
            raise TargetRefused("Write an internationalised host name in its ASCII (xn--) form.") from None
        if not _HOSTNAME.match(host):
            raise TargetRefused(
                "The host must be a single host name or IP address (no spaces, commas, slashes or ports).") from None
    return host


def vet_host(host: str, port: int | None = None) -> list[IPAddress]:
    """The addresses ``host`` resolves to, when Bastion may connect to every one of them.

    Raises TargetRefused naming the first problem: bad syntax, no resolution,
    an always-refused address, or (when TARGET_HOSTS_ALLOWED is set) a host
    that matches neither a listed name nor, with every address, a listed network.
    """
    host = check_host_syntax(host)
    addresses = _resolve(host, port)
    for address in addresses:
        reason = refusal_reason(address)
        if reason is not None:
            raise TargetRefused(f"{host} resolves to {address}, {reason}; Bastion never connects there.")
    entries = allowed_targets()
    if entries:
        names, networks = _parse_allowlist(entries)
        in_networks = all(any(a.version == n.version and a in n for n in networks) for a in addresses)
        if not (_name_allowed(host, names) or in_networks):
            raise TargetRefused(f"{host} is not in the allowed target hosts (setting target_hosts_allowed).")
    return addresses
