"""Destination addresses: which IPs the proxy refuses to dial, and IP literals in disguise. Pure.

:func:`refusal_reason` answers None for an ordinary public unicast address and otherwise a
stable snake_case reason (it goes into the 403 body and the audit line):

    IPv4                                         IPv6
    cloud_metadata  169.254.169.254, 169.254.170.2 (ECS), 100.100.100.200    fd00:ec2::254
    unspecified     0.0.0.0/8                    ::
    loopback        127.0.0.0/8                  ::1
    private         10/8, 172.16/12, 192.168/16
    cgnat           100.64.0.0/10
    link_local      169.254.0.0/16
    documentation   192.0.2/24, 198.51.100/24, 203.0.113/24     2001:db8::/32, 3fff::/20
    benchmarking    198.18.0.0/15                2001:2::/48
    6to4            192.88.99.0/24 (relay)       2002::/16
    multicast       224.0.0.0/4                  ff00::/8
    broadcast       255.255.255.255
    reserved        192.0.0.0/24, 240.0.0.0/4    2001::/23 (IETF protocol assignments) and
                                                 everything outside 2000::/3 not named here
    ipv4_mapped                                  ::ffff:0:0/96
    ipv4_translated                              ::ffff:0:0:0/96
    ipv4_compatible                              ::/96 (deprecated)
    nat64                                        64:ff9b::/96, 64:ff9b:1::/48
    teredo                                       2001::/32
    unique_local                                 fc00::/7
    ipv6_link_local                              fe80::/10, and any address with a zone id
    site_local                                   fec0::/10 (deprecated)

IPv6 forms that embed an IPv4 address (mapped, translated, compatible, NAT64, 6to4, Teredo) are
refused as a whole class, whatever the embedded address: simpler than decoding each form, and
no ordinary client needs them through an HTTP proxy. An operator who needs one allows it with
``--allow-cidr`` (:func:`allowed_by_cidr`, which also matches ``::ffff:a.b.c.d`` against IPv4
ranges, since it reaches the same host).

:func:`parse_ip_literal` recognizes what C resolvers and browsers accept as an IPv4 address
(``inet_aton`` and WHATWG URL rules): ``2130706433``, ``0x7f000001``, ``0177.0.0.1``,
``127.1``, ``10.1``, a trailing dot, full-width digits after UTS #46 mapping; and IPv6 with or
without brackets, with a zone id (``%eth0``, or ``%25eth0`` inside brackets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_network,
)

import idna

from core.errors import UsageError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[Network, str], ...]:
    return tuple((ip_network(cidr), reason) for cidr, reason in rows)


# First match wins: specific entries come before the blocks that contain them.
_V4 = _table(
    [
        ("169.254.169.254/32", "cloud_metadata"),
        ("169.254.170.2/32", "cloud_metadata"),
        ("100.100.100.200/32", "cloud_metadata"),
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "cgnat"),
        ("169.254.0.0/16", "link_local"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("198.18.0.0/15", "benchmarking"),
        ("192.88.99.0/24", "6to4"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    ]
)
_V6 = _table(
    [
        ("fd00:ec2::254/128", "cloud_metadata"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "ipv4_mapped"),
        ("::ffff:0:0:0/96", "ipv4_translated"),
        ("::/96", "ipv4_compatible"),
        ("64:ff9b::/96", "nat64"),
        ("64:ff9b:1::/48", "nat64"),
        ("2002::/16", "6to4"),
        ("2001::/32", "teredo"),
        ("2001:2::/48", "benchmarking"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique_local"),
        ("fe80::/10", "ipv6_link_local"),
        ("fec0::/10", "site_local"),
        ("ff00::/8", "multicast"),
    ]
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
# Every answer refusal_reason() can give (proxy.reasons names an ``address_*`` reason for each).
REFUSAL_REASONS = frozenset(
    {reason for _, reason in (*_V4, *_V6)} | {"reserved", "ipv6_link_local", "not_an_ip"}
)


def refusal_reason(ip: str | Address) -> str | None:
    """None if ``ip`` is an ordinary public unicast address, else why the proxy won't dial it.

    A string is read with :func:`parse_ip_literal`; one that is no address at all gives
    ``"not_an_ip"`` (fail closed).
    """
    if isinstance(ip, str):
        parsed = parse_ip_literal(ip)
        if parsed is None:
            return "not_an_ip"
        ip = parsed
    if isinstance(ip, IPv4Address):
        return _lookup(_V4, ip)
    bare = IPv6Address(int(ip))
    reason = _lookup(_V6, bare)
    if reason is None and bare not in _GLOBAL_UNICAST:
        reason = "reserved"
    if reason is None and ip.scope_id:
        reason = "ipv6_link_local"
    return reason


def _lookup(table: tuple[tuple[Network, str], ...], ip: Address) -> str | None:
    for network, reason in table:
        if ip in network:
            return reason
    return None


_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*", re.ASCII)


def parse_ip_literal(host: str) -> Address | None:
    """The address ``host`` denotes if it is an IP literal in any accepted form, else None."""
    text = host.strip()
    if not text:
        return None
    text = text.split(None, 1)[0]  # inet_aton ignores anything after whitespace
    if not text.isascii():
        try:
            text = str(idna.uts46_remap(text, std3_rules=False, transitional=False))
        except (idna.IDNAError, UnicodeError):
            return None
    if text.startswith("[") and text.endswith("]"):
        return _ipv6(text[1:-1].replace("%25", "%", 1))
    if ":" in text:
        return _ipv6(text)
    return _ipv4(text)


def _ipv6(text: str) -> IPv6Address | None:
    try:
        return IPv6Address(text)
    except ValueError:
        return None


def _ipv4(text: str) -> IPv4Address | None:
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _PART.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            digits, base, width = part[2:].lstrip("0"), 16, 8
        elif part.startswith("0"):
            digits, base, width = part[1:].lstrip("0"), 8, 11
        else:
            digits, base, width = part, 10, 10
        if len(digits) > width:
            return None
        values.append(int(digits or "0", base))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (24 - 8 * i)
    return IPv4Address(number)


def parse_cidrs(texts: Iterable[str]) -> tuple[Network, ...]:
    """Parse ``--allow-cidr`` values (each may hold comma-separated items); deduplicated.

    UsageError with the fix for anything but a plain address range. ``/0`` is refused: it would
    allow cloud metadata, the host and every private network at once.
    """
    out: dict[Network, None] = {}
    for text in texts:
        for item in text.split(","):
            out.setdefault(_parse_cidr(item.strip()), None)
    return tuple(out)


def _parse_cidr(item: str) -> Network:
    example = 'use an address range like "10.0.0.0/8" or "fd00::/64" (names go in --allow)'
    if "%" in item:
        raise UsageError(f"--allow-cidr {item!r}: zone ids are not allowed; {example}")
    try:
        network = ip_network(item, strict=True)
    except ValueError:
        try:
            loose = ip_network(item, strict=False)
        except ValueError:
            raise UsageError(f"--allow-cidr {item!r}: not an address range; {example}") from None
        raise UsageError(f'--allow-cidr {item!r}: it has host bits set; use "{loose}"') from None
    if network.prefixlen == 0:
        raise UsageError(
            f"--allow-cidr {item!r}: it would allow every address, including cloud metadata "
            "and the host; name the ranges you need"
        )
    return network


def allowed_by_cidr(ip: str | Address, cidrs: Iterable[Network]) -> bool:
    """Does an operator-allowed range contain ``ip``? (``::ffff:a.b.c.d`` counts as a.b.c.d.)"""
    addr = parse_ip_literal(ip) if isinstance(ip, str) else ip
    if addr is None:
        return False
    candidates: list[Address] = [addr]
    if isinstance(addr, IPv6Address):
        addr = IPv6Address(int(addr))
        candidates = [addr] if addr.ipv4_mapped is None else [addr, addr.ipv4_mapped]
    return any(c in network for network in cidrs for c in candidates)
