from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.addresses import allowed_by_cidr, parse_cidrs, parse_ip_literal, refusal_reason
from core.errors import UsageError

# --- refusal_reason ---------------------------------------------------------------------------

# (address, reason); every class with IPv4 and IPv6 examples where the class has both
REASONS = {
    "aws metadata": ("169.254.169.254", "cloud_metadata"),
    "ecs metadata": ("169.254.170.2", "cloud_metadata"),
    "alibaba metadata": ("100.100.100.200", "cloud_metadata"),
    "aws metadata v6": ("fd00:ec2::254", "cloud_metadata"),
    "unspecified": ("0.0.0.0", "unspecified"),
    "this network": ("0.1.2.3", "unspecified"),
    "unspecified v6": ("::", "unspecified"),
    "loopback": ("127.0.0.1", "loopback"),
    "loopback other": ("127.255.0.9", "loopback"),
    "loopback v6": ("::1", "loopback"),
    "private 10": ("10.1.2.3", "private"),
    "private 172.16": ("172.16.0.1", "private"),
    "private 172.31": ("172.31.255.254", "private"),
    "private 192.168": ("192.168.1.1", "private"),
    "cgnat": ("100.64.0.1", "cgnat"),
    "cgnat top": ("100.127.255.254", "cgnat"),
    "link local": ("169.254.1.1", "link_local"),
    "link local v6": ("fe80::1", "ipv6_link_local"),
    "link local v6 zone": ("fe80::1%eth0", "ipv6_link_local"),
    "public v6 with zone": ("2606:4700::1111%eth0", "ipv6_link_local"),
    "loopback v6 with zone": ("::1%lo", "loopback"),
    "multicast": ("224.0.0.1", "multicast"),
    "multicast top": ("239.255.255.250", "multicast"),
    "multicast v6": ("ff02::1", "multicast"),
    "broadcast": ("255.255.255.255", "broadcast"),
    "reserved class e": ("240.0.0.1", "reserved"),
    "reserved ietf": ("192.0.0.8", "reserved"),
    "reserved v6 discard": ("100::1", "reserved"),
    "reserved v6 ietf block": ("2001:1::1", "reserved"),
    "reserved v6 outside 2000::/3": ("4000::1", "reserved"),
    "documentation 1": ("192.0.2.1", "documentation"),
    "documentation 2": ("198.51.100.7", "documentation"),
    "documentation 3": ("203.0.113.9", "documentation"),
    "documentation v6": ("2001:db8::1", "documentation"),
    "documentation v6 new": ("3fff::1", "documentation"),
    "benchmarking": ("198.18.0.1", "benchmarking"),
    "benchmarking v6": ("2001:2::1", "benchmarking"),
    "6to4 relay": ("192.88.99.1", "6to4"),
    "6to4": ("2002:5db8:d70e::1", "6to4"),
    "6to4 of loopback": ("2002:7f00:1::1", "6to4"),
    "unique local fd": ("fd12:3456::1", "unique_local"),
    "unique local fc": ("fc00::1", "unique_local"),
    "site local": ("fec0::1", "site_local"),
    "ipv4 mapped loopback": ("::ffff:127.0.0.1", "ipv4_mapped"),
    "ipv4 mapped metadata": ("::ffff:169.254.169.254", "ipv4_mapped"),
    "ipv4 mapped public": ("::ffff:93.184.215.14", "ipv4_mapped"),
    "ipv4 translated": ("::ffff:0:7f00:1", "ipv4_translated"),
    "ipv4 compatible": ("::127.0.0.1", "ipv4_compatible"),
    "ipv4 compatible public": ("::93.184.215.14", "ipv4_compatible"),
    "nat64": ("64:ff9b::7f00:1", "nat64"),
    "nat64 public": ("64:ff9b::5db8:d70e", "nat64"),
    "nat64 local use": ("64:ff9b:1::1", "nat64"),
    "teredo": ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
    "decimal loopback": ("2130706433", "loopback"),
    "hex loopback": ("0x7f000001", "loopback"),
    "octal loopback": ("0177.0.0.1", "loopback"),
    "short loopback": ("127.1", "loopback"),
    "short private": ("10.1", "private"),
    "decimal metadata": ("2852039166", "cloud_metadata"),
    "not an ip": ("example.com", "not_an_ip"),
    "garbage": ("", "not_an_ip"),
}


@pytest.mark.parametrize(("ip", "reason"), REASONS.values(), ids=REASONS.keys())
def test_refusal_reason(ip: str, reason: str) -> None:
    assert refusal_reason(ip) == reason
    parsed = parse_ip_literal(ip)
    if parsed is not None:
        assert refusal_reason(parsed) == reason


# Ordinary public addresses, only classified here: no test ever connects to one.
PUBLIC = [
    "93.184.215.14",
    "9.9.9.9",
    "208.67.222.222",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",
    "[2606:4700::1111]",
    "169.253.1.1",
]


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip: str) -> None:
    assert refusal_reason(ip) is None


# --- parse_ip_literal -------------------------------------------------------------------------

LITERALS = {
    "dotted quad": ("93.184.215.14", "93.184.215.14"),
    "decimal integer": ("2130706433", "127.0.0.1"),
    "hex integer": ("0x7f000001", "127.0.0.1"),
    "hex upper": ("0X7F000001", "127.0.0.1"),
    "octal part": ("0177.0.0.1", "127.0.0.1"),
    "hex parts": ("0x7f.0x0.0x0.0x1", "127.0.0.1"),
    "mixed parts": ("0x7f.0.1", "127.0.0.1"),
    "short a.b": ("127.1", "127.0.0.1"),
    "short 10.1": ("10.1", "10.0.0.1"),
    "short a.b.c": ("10.1.258", "10.1.1.2"),
    "zero padded octal": ("00000177.0.0.01", "127.0.0.1"),
    "bare 0x": ("0x.0x.0x.0x", "0.0.0.0"),
    "zero": ("0", "0.0.0.0"),
    "trailing dot": ("127.0.0.1.", "127.0.0.1"),
    "max": ("4294967295", "255.255.255.255"),
    "full width digits": ("\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1"),
    "ideographic dots": ("127\u30020\u30020\u30021", "127.0.0.1"),
    "surrounding spaces": (" 10.0.0.1 ", "10.0.0.1"),
    "trailing garbage after space": ("127.0.0.1 evil.test", "127.0.0.1"),
    "ipv6": ("2606:4700::1111", "2606:4700::1111"),
    "ipv6 brackets": ("[::1]", "::1"),
    "ipv6 zone": ("fe80::1%eth0", "fe80::1%eth0"),
    "ipv6 zone bracketed url form": ("[fe80::1%25eth0]", "fe80::1%eth0"),
    "ipv6 mapped": ("::ffff:127.0.0.1", "::ffff:7f00:1"),
}


@pytest.mark.parametrize(("host", "expected"), LITERALS.values(), ids=LITERALS.keys())
def test_parse_ip_literal(host: str, expected: str) -> None:
    assert parse_ip_literal(host) == ip_address(expected)


NOT_LITERALS = {
    "name": "example.com",
    "numeric labels with name": "1.2.3.example",
    "too many parts": "1.2.3.4.5",
    "part over 255": "256.1.1.1",
    "last part too big": "1.2.3.256",
    "short form too big": "1.16777216",
    "integer too big": "4294967296",
    "huge decimal": "9" * 5000,
    "huge hex": "0x1" + "0" * 100,
    "bad octal digit": "08.1",
    "bad hex digit": "0xfg",
    "empty part": "1..2",
    "two trailing dots": "127.0.0.1..",
    "arabic digits": "\u0661\u0662\u0667.0.0.1",
    "sign": "+1.2.3.4",
    "empty": "",
    "blank": "   ",
    "bad brackets": "[127.0.0.1]",
    "not ipv6": "fe80::g",
    "port": "127.0.0.1:80",
}


@pytest.mark.parametrize("host", NOT_LITERALS.values(), ids=NOT_LITERALS.keys())
def test_parse_ip_literal_returns_none(host: str) -> None:
    assert parse_ip_literal(host) is None


# --- CIDRs ------------------------------------------------------------------------------------


def test_parse_cidrs() -> None:
    cidrs = parse_cidrs(["10.0.0.0/8, fd00::/64", "10.0.0.0/8", "192.0.2.7"])
    assert cidrs == (ip_network("10.0.0.0/8"), ip_network("fd00::/64"), ip_network("192.0.2.7/32"))
    assert parse_cidrs([]) == ()


CIDR_ERRORS = {
    "host bits": ("10.0.0.1/8", 'use "10.0.0.0/8"'),
    "host bits v6": ("fd00::1/64", 'use "fd00::/64"'),
    "a name": ("example.com", "names go in --allow"),
    "empty": ("", "not an address range"),
    "prefix too long": ("10.0.0.0/33", "not an address range"),
    "octal": ("010.0.0.0/8", "not an address range"),
    "everything v4": ("0.0.0.0/0", "every address"),
    "everything v6": ("::/0", "every address"),
    "zone": ("fe80::%eth0/64", "zone ids"),
    "trailing comma": ("10.0.0.0/8,", "not an address range"),
}


@pytest.mark.parametrize(("text", "fragment"), CIDR_ERRORS.values(), ids=CIDR_ERRORS.keys())
def test_parse_cidrs_refuses_with_fix(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_cidrs([text])
    assert fragment in info.value.message


ALLOWED = {
    "inside v4": ("10.1.2.3", True),
    "outside v4": ("11.0.0.1", False),
    "sneaky form inside": ("10.1", True),
    "mapped inside": ("::ffff:10.1.2.3", True),
    "mapped outside": ("::ffff:11.0.0.1", False),
    "inside v6": ("fd00::5", True),
    "inside v6 with zone": ("fd00::5%eth0", True),
    "outside v6": ("fd01::5", False),
    "not an ip": ("example.com", False),
}


@pytest.mark.parametrize(("ip", "expected"), ALLOWED.values(), ids=ALLOWED.keys())
def test_allowed_by_cidr(ip: str, expected: bool) -> None:
    cidrs = parse_cidrs(["10.0.0.0/8", "fd00::/64"])
    assert allowed_by_cidr(ip, cidrs) is expected
    parsed = parse_ip_literal(ip)
    if parsed is not None:
        assert allowed_by_cidr(parsed, cidrs) is expected
    assert allowed_by_cidr(ip, ()) is False


# --- properties -------------------------------------------------------------------------------

ipv4s = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6s = st.integers(0, 2**128 - 1).map(IPv6Address)


@given(ipv4s)
def test_refused_ipv4_is_refused_when_mapped(ip: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{ip}")
    if refusal_reason(ip) is not None:
        assert refusal_reason(mapped) is not None
        assert refusal_reason(f"[::ffff:{ip}]") is not None
    # every embedding class is refused whatever it embeds
    assert refusal_reason(mapped) == "ipv4_mapped"
    assert refusal_reason(IPv6Address((0x0064_FF9B << 96) | int(ip))) == "nat64"
    assert refusal_reason(IPv6Address((0x2002 << 112) | (int(ip) << 80))) == "6to4"


@given(ipv4s)
def test_every_ipv4_spelling_parses_to_the_same_address(ip: IPv4Address) -> None:
    n = int(ip)
    a, b, c, d = ip.packed
    for spelling in (str(n), hex(n), f"{a}.{(b << 16) | (c << 8) | d}", f"0{a:o}.{b}.{c}.0x{d:x}"):
        assert parse_ip_literal(spelling) == ip


@given(st.one_of(ipv4s, ipv6s))
def test_refusal_reason_of_text_equals_of_address(ip: IPv4Address | IPv6Address) -> None:
    reason = refusal_reason(ip)
    assert refusal_reason(str(ip)) == reason
    assert reason is None or reason.isidentifier() or reason == "6to4"


@given(st.text(max_size=40))
def test_parse_ip_literal_never_raises(text: str) -> None:
    parse_ip_literal(text)
