"""T23: target hosts are vetted by what they resolve to; metadata and link-local addresses are always refused."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import text

from bastion.connections.engines import build_engine
from bastion.connections.models import Connection
from bastion.connections.netguard import TargetRefused, vet_host

ALWAYS_REFUSED = [
    "169.254.169.254",  # AWS/GCP/Azure metadata
    "fd00:ec2::254",  # AWS metadata over IPv6
    "100.100.100.200",  # Alibaba metadata
    "169.254.10.20",  # link-local
    "fe80::1",
    "0.0.0.0",  # noqa: S104 - "this host" on Linux, which is the point
    "::",
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    # The metadata service in disguise: resolved, then refused.
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "2852039166",
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "169.254.43518",
]


@pytest.mark.parametrize("host", ALWAYS_REFUSED)
def test_T23_link_local_metadata_and_unspecified_addresses_are_refused(settings, host):
    settings.TARGET_HOSTS_ALLOWED = []
    with pytest.raises(TargetRefused, match="never connects there"):
        vet_host(host, 5432)


@pytest.mark.parametrize("host", ["169.254.169.254", "2852039166", "fd00:ec2::254", "fe80::1"])
def test_T23_the_allowlist_cannot_open_an_always_refused_address(settings, host):
    settings.TARGET_HOSTS_ALLOWED = ["0.0.0.0/0", "::/0", "169.254.0.0/16", host]
    with pytest.raises(TargetRefused):
        vet_host(host, 5432)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "10.1.2.3", "192.168.7.8", "172.16.0.9"])
def test_T23_ordinary_addresses_are_accepted_when_no_allowlist_is_set(settings, host):
    settings.TARGET_HOSTS_ALLOWED = []
    addresses = vet_host(host, 5432)
    assert addresses and all(isinstance(a, ipaddress.IPv4Address | ipaddress.IPv6Address) for a in addresses)


@pytest.mark.parametrize("host", [
    "db1,db2",  # libpq: two hosts
    "/var/run/postgresql",  # libpq: a Unix socket directory
    "db host",
    "db:5432",
    "user@db",
    "évil.example",
    "",
])
def test_T23_hosts_that_a_driver_would_read_as_more_than_one_host_are_refused(host):
    # Refused for their form, before any DNS lookup.
    with pytest.raises(TargetRefused, match=r"single host name or IP address|ASCII|is required"):
        vet_host(host, 5432)


def test_T23_allowlist_by_network(settings):
    settings.TARGET_HOSTS_ALLOWED = ["10.0.0.0/8", "192.168.5.7"]
    assert vet_host("10.20.30.40", 5432) == [ipaddress.ip_address("10.20.30.40")]
    assert vet_host("192.168.5.7", 5432)
    for host in ("192.168.5.8", "127.0.0.1", "localhost", "172.16.0.1"):
        with pytest.raises(TargetRefused, match="not in the allowed target hosts"):
            vet_host(host, 5432)


def test_T23_allowlist_by_name(settings):
    settings.TARGET_HOSTS_ALLOWED = ["LOCALHOST"]
    assert vet_host("localhost", 5432)
    with pytest.raises(TargetRefused):
        vet_host("127.0.0.1", 5432)  # the address was not listed, only the name
    settings.TARGET_HOSTS_ALLOWED = ["*.localhost"]
    with pytest.raises(TargetRefused):
        vet_host("localhost", 5432)  # a wildcard covers names below, not the name itself


def test_T23_an_unresolvable_name_is_refused_with_a_clear_message():
    with pytest.raises(TargetRefused, match="could not be resolved"):
        vet_host("no-such-host.invalid", 5432)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_T23_engines_vet_the_host_before_every_connect(settings, engine):
    # A row edited behind Bastion's back (or an allowlist tightened since) still cannot reach the address.
    settings.TARGET_HOSTS_ALLOWED = []
    connection = Connection(name="x", engine=engine, host="169.254.169.254", port=80, database="d",
                            username="u", tls_mode="disable")
    db = build_engine(connection, password="pw", pooled=False)
    with pytest.raises(TargetRefused), db.connect() as conn:
        conn.execute(text("SELECT 1"))
    settings.TARGET_HOSTS_ALLOWED = ["10.0.0.0/8"]
    connection.host = "127.0.0.1"
    with pytest.raises(TargetRefused), build_engine(connection, password="pw", pooled=False).connect():
        pass
