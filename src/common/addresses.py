"""Which addresses a job may fetch from, and a completion webhook be posted to: public ones, and what the
operator's allowlist names (`FETCH_ALLOWLIST`, `WEBHOOK_ALLOWLIST`).

An address is public when it is globally reachable and nothing else: not loopback, private, link-local,
unique-local, site-local, multicast, reserved or a cloud metadata address. An IPv6 address that carries
an IPv4 address for a translator or tunnel to reach (IPv4-mapped `::ffff:a.b.c.d`, NAT64
`64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`, Teredo `2001::/32`) is judged by that IPv4 address too, so
`[64:ff9b::a9fe:a9fe]` is 169.254.169.254 and refused. The deprecated forms with no legitimate use
(IPv4-compatible `::a.b.c.d`, SIIT `::ffff:0:a.b.c.d`) and the local-use NAT64 prefix `64:ff9b:1::/48`
are refused whatever they carry.

Allowlist entries (`FETCH_ALLOWLIST`, comma-separated) are `host:port`, `[v6]:port`, or a bare `host`
or address, which allows every port of it. An entry naming a host name lets that name through whatever
it resolves to; an entry naming an address lets that address through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.errors import InputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
ANY_PORT = 0


def refusal(address: Address) -> str | None:
    """Why a job may not fetch from `address`, or None when it is public."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        return _ipv6_refusal(address)
    return _kind_refusal(address)


def _ipv6_refusal(address: ipaddress.IPv6Address) -> str | None:
    if address.is_loopback or address.is_unspecified:
        return _kind_refusal(address)
    for form, carried in _carried_ipv4(address):
        why = refusal(carried)
        if why:
            return f"the {form} form of {carried}, {why}"
    if address in LOCAL_NAT64:
        return "in the local-use NAT64 prefix 64:ff9b:1::/48"
    if address in IPV4_COMPATIBLE or address in SIIT:
        return f"a deprecated IPv6 form of the IPv4 address {ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)}"
    if address.ipv4_mapped or address in NAT64 or address.sixtofour:
        return None  # judged by the IPv4 address it carries, which is public
    if address.is_site_local:
        return "a site-local address"
    return _kind_refusal(address)


def _carried_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    if address.ipv4_mapped:
        return [("IPv4-mapped", address.ipv4_mapped)]
    if address in NAT64:
        return [("NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))]
    if address.sixtofour:
        return [("6to4", address.sixtofour)]
    if address.teredo:
        server, client = address.teredo
        return [("Teredo", client), ("Teredo server", server)]
    return []


def _kind_refusal(address: Address) -> str | None:
    for kind in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind.replace('_', '-')} address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Allowlist:
    """(host or address, port) pairs a job may fetch although not public; port `ANY_PORT` means every port."""

    entries: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: str | Iterable[str], setting: str = "FETCH_ALLOWLIST") -> Allowlist:
        """From the text of `setting` (comma-separated) or a list of entries; raises ValueError on a bad one."""
        items = entries.split(",") if isinstance(entries, str) else entries
        return cls(frozenset(_entry(item.strip(), setting) for item in items if item.strip()))

    def names(self, host: str, port: int) -> bool:
        """Does an entry name `host` (a host name or an address, as written in the URL) on `port`?"""
        key = _normal_host(host)
        return (key, port) in self.entries or (key, ANY_PORT) in self.entries


def _entry(text: str, setting: str) -> tuple[str, int]:
    host, port = text, ANY_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = _port(rest.removeprefix(":"), text, setting) if rest else ANY_PORT
    elif text.count(":") == 1:  # host:port; more colons is a bare IPv6 address
        host, _, port_text = text.partition(":")
        port = _port(port_text, text, setting)
    if not host:
        raise ValueError(f"{setting} entry {text!r} names no host")
    return _normal_host(host), port


def _port(text: str, entry: str, setting: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{setting} entry {entry!r} has no valid port (host:port, [v6]:port or a bare host)")
    return int(text)


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host.lower().rstrip(".")


def check_address(host: str, port: int, allowlist: Allowlist) -> Address:
    """Resolve `host` and return the address to connect to, or refuse it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"The host {host!r} does not resolve.", code="fetch_failed") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allowlist.names(host, port):
        for address in addresses:
            why = refusal(address)
            if why and not allowlist.names(str(address), port):
                raise InputError(f"Fetching {host} port {port} is refused: it resolves to {address}, {why}.",
                                 code="address_refused")
    return addresses[0]


__all__ = ["ANY_PORT", "Address", "Allowlist", "check_address", "refusal"]
