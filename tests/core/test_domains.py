from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.domains import (
    DomainPattern,
    matches_any,
    normalize_host,
    parse_pattern,
    parse_patterns,
)
from core.errors import InvalidDomain, UsageError

# --- normalize_host ---------------------------------------------------------------------------

NORMALIZED = {
    "lower case": ("API.Example.COM", "api.example.com"),
    "one trailing dot": ("example.com.", "example.com"),
    "unicode to punycode": ("bücher.de", "xn--bcher-kva.de"),
    "unicode upper case": ("BÜCHER.de", "xn--bcher-kva.de"),
    "ideographic full stop": ("example\u3002com", "example.com"),
    "punycode kept": ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    "underscore": ("_dmarc.example.com", "_dmarc.example.com"),
    "single label": ("localhost", "localhost"),
    "ipv4 kept": ("93.184.215.14", "93.184.215.14"),
    "ipv6 brackets stripped": ("[2606:4700::1111]", "2606:4700::1111"),
    "ipv6 compressed": ("2606:4700:0:0:0:0:0:1111", "2606:4700::1111"),
    "ipv6 zone kept": ("[fe80::1%eth0]", "fe80::1%eth0"),
    "63-char label": ("a" * 63 + ".com", "a" * 63 + ".com"),
}


@pytest.mark.parametrize(("host", "expected"), NORMALIZED.values(), ids=NORMALIZED.keys())
def test_normalize_host(host: str, expected: str) -> None:
    assert normalize_host(host) == expected
    assert normalize_host(expected) == expected


BAD_HOSTS = {
    "empty": "",
    "only a dot": ".",
    "two trailing dots": "example.com..",
    "empty label": "a..example.com",
    "leading dot": ".example.com",
    "label too long": "a" * 64 + ".com",
    "name too long": ".".join(["a" * 60] * 5),
    "leading hyphen": "-a.example.com",
    "trailing hyphen": "a-.example.com",
    "space": "a b.example.com",
    "slash": "example.com/x",
    "port": "example.com:443",
    "star": "*.example.com",
    "at sign": "user@example.com",
    "nul": "exa\x00mple.com",
    "emoji (not IDNA 2008)": "\U0001f4a9.la",
    "bidi override": "exa\u202emple.com",
    "bad brackets": "[example.com]",
    "huge input": "a." * 2000 + "com",
}


@pytest.mark.parametrize("host", BAD_HOSTS.values(), ids=BAD_HOSTS.keys())
def test_normalize_host_refuses(host: str) -> None:
    with pytest.raises(InvalidDomain):
        normalize_host(host)


# --- parse_pattern ----------------------------------------------------------------------------

PARSED = {
    "exact": ("api.example.com", DomainPattern("api.example.com", False, None)),
    "wildcard": ("*.example.com", DomainPattern("example.com", True, None)),
    "with port": ("api.example.com:8443", DomainPattern("api.example.com", False, 8443)),
    "wildcard with port": ("*.example.com:443", DomainPattern("example.com", True, 443)),
    "normalized": ("API.Example.COM.", DomainPattern("api.example.com", False, None)),
    "unicode wildcard": ("*.bücher.de", DomainPattern("xn--bcher-kva.de", True, None)),
    "deep wildcard": ("*.eu.api.example.com", DomainPattern("eu.api.example.com", True, None)),
    "no public suffix list": ("*.co.uk", DomainPattern("co.uk", True, None)),
    "single label exact": ("localhost", DomainPattern("localhost", False, None)),
    "port 65535": ("a.example.com:65535", DomainPattern("a.example.com", False, 65535)),
}


@pytest.mark.parametrize(("text", "expected"), PARSED.values(), ids=PARSED.keys())
def test_parse_pattern(text: str, expected: DomainPattern) -> None:
    pattern = parse_pattern(text)
    assert pattern == expected
    assert parse_pattern(str(pattern)) == pattern


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("*.Example.com", "*.example.com"),
        ("api.example.com:8443", "api.example.com:8443"),
        ("*.example.com:8443", "*.example.com:8443"),
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    assert str(parse_pattern(text)) == canonical


# (pattern text, fragment the message must contain)
REFUSED = {
    "star alone": ("*", 'use "*.example.com"'),
    "wildcard over a TLD": ("*.com", 'use "*.example.com"'),
    "wildcard over a TLD with dot": ("*.com.", 'use "*.example.com"'),
    "glob inside a label": ("a*.example.com", 'use "*.example.com"'),
    "glob in the middle": ("api.*.example.com", 'use "*.example.com"'),
    "glob without dot": ("*example.com", 'use "*.example.com"'),
    "double star": ("**.example.com", 'use "*.example.com"'),
    "two wildcards": ("*.*.example.com", 'use "*.example.com"'),
    "trailing glob": ("example.*", "use a name like"),
    "https scheme": ("https://api.example.com", 'use "api.example.com"'),
    "scheme, port, path": ("https://api.example.com:8443/v1", 'use "api.example.com:8443"'),
    "path": ("api.example.com/v1", 'use "api.example.com"'),
    "query": ("api.example.com?x=1", 'use "api.example.com"'),
    "fragment": ("api.example.com#top", 'use "api.example.com"'),
    "userinfo": ("user:pw@api.example.com", 'use "api.example.com"'),
    "inner whitespace": ("api .example.com", 'use "api.example.com"'),
    "outer whitespace": (" api.example.com ", 'use "api.example.com"'),
    "tab": ("api.example.com\t", 'use "api.example.com"'),
    "empty": ("", "empty"),
    "blank": ("  ", "empty"),
    "regex anchors": (r"^api\.example\.com$", 'use "api.example.com"'),
    "regex wildcard": (r".*\.example\.com", 'use "*.example.com"'),
    "regex group": (r"(api|www)\.example\.com", "not regular expressions"),
    "regex plus": ("a+.example.com", "not regular expressions"),
    "leading dot": (".example.com", '"*.example.com" for its subdomains'),
    "ipv4": ("10.0.0.1", "--allow-cidr 10.0.0.1/32"),
    "ipv4 with port": ("10.0.0.1:443", "--allow-cidr 10.0.0.1/32"),
    "ipv4 short form": ("127.1", "--allow-cidr 127.0.0.1/32"),
    "ipv4 decimal": ("2130706433", "--allow-cidr 127.0.0.1/32"),
    "ipv4 hex": ("0x7f000001", "--allow-cidr 127.0.0.1/32"),
    "ipv6 bare": ("fd00::1", "--allow-cidr fd00::1/128"),
    "ipv6 bracketed": ("[::1]", "--allow-cidr ::1/128"),
    "ipv6 bracketed with port": ("[::1]:8443", "--allow-cidr ::1/128"),
    "numeric last label": ("*.10.0.1", "reads as an IP address"),
    "port zero": ("api.example.com:0", "outside 1-65535"),
    "port too big": ("api.example.com:65536", "outside 1-65535"),
    "port empty": ("api.example.com:", 'use "api.example.com"'),
    "port glob": ("api.example.com:*", "every port unless it names one"),
    "port name": ("api.example.com:https", "not a number"),
    "port negative": ("api.example.com:-1", "not a number"),
    "empty label": ("a..example.com", "empty label"),
    "label too long": ("a" * 64 + ".com", "longer than 63"),
    "underscore in unicode label": ("bü_cher.de", "IDNA"),
    "control char shown escaped": ("exa\x1bmple.com", "\\u001b"),
}


@pytest.mark.parametrize(("text", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_parse_pattern_refuses_with_fix(text: str, fragment: str) -> None:
    with pytest.raises(InvalidDomain) as info:
        parse_pattern(text)
    assert isinstance(info.value, UsageError)
    assert info.value.message.startswith("incorrect domain pattern")
    assert fragment in info.value.message


def test_parse_patterns_splits_dedupes_keeps_order() -> None:
    patterns = parse_patterns(["b.example.com, *.example.com", "B.example.com.", "a.example.com"])
    assert [str(p) for p in patterns] == ["b.example.com", "*.example.com", "a.example.com"]
    assert parse_patterns([]) == ()


@pytest.mark.parametrize("texts", [["a.example.com,"], ["a.example.com,,b.example.com"], [""]])
def test_parse_patterns_refuses_empty_items(texts: list[str]) -> None:
    with pytest.raises(InvalidDomain):
        parse_patterns(texts)


# --- matching ---------------------------------------------------------------------------------

# (pattern, host, port, matches)
MATCHES = {
    "exact": ("api.example.com", "api.example.com", 443, True),
    "exact any port": ("api.example.com", "api.example.com", 8080, True),
    "exact is not a subdomain": ("api.example.com", "x.api.example.com", 443, False),
    "exact upper case host": ("example.com", "EXAMPLE.com.", 443, True),
    "suffix attack": ("sentry.io", "sentry.io.evil.test", 443, False),
    "prefix attack": ("example.com", "evilexample.com", 443, False),
    "wildcard one level": ("*.example.com", "a.example.com", 443, True),
    "wildcard two levels": ("*.example.com", "a.b.example.com", 443, True),
    "wildcard not the apex": ("*.example.com", "example.com", 443, False),
    "wildcard not a lookalike": ("*.example.com", "evilexample.com", 443, False),
    "wildcard suffix attack": ("*.example.com", "a.example.com.evil.test", 443, False),
    "wildcard upper case": ("*.example.com", "A.EXAMPLE.COM", 443, True),
    "named port": ("api.example.com:8443", "api.example.com", 8443, True),
    "named port, other port": ("api.example.com:8443", "api.example.com", 443, False),
    "wildcard named port": ("*.example.com:8443", "a.example.com", 443, False),
    "unicode host, punycode pattern": ("xn--bcher-kva.de", "bücher.de", 443, True),
    "punycode host, unicode pattern": ("*.bücher.de", "a.xn--bcher-kva.de", 443, True),
    "invalid host matches nothing": ("example.com", "exa mple.com", 443, False),
    "host with port text": ("example.com", "example.com:443", 443, False),
    "ip host never matches": ("*.example.com", "127.0.0.1", 443, False),
    "empty host": ("example.com", "", 443, False),
}


@pytest.mark.parametrize(("pattern", "host", "port", "expected"), MATCHES.values(), ids=MATCHES)
def test_matches(pattern: str, host: str, port: int, expected: bool) -> None:
    assert parse_pattern(pattern).matches(host, port) is expected
    found = matches_any([parse_pattern(pattern)], host, port)
    assert (found is not None) is expected


def test_matches_any_returns_first_match() -> None:
    patterns = parse_patterns(["a.example.com", "*.example.com", "b.example.com"])
    assert matches_any(patterns, "b.example.com", 443) == patterns[1]
    assert matches_any(patterns, "A.example.com", 443) == patterns[0]
    assert matches_any(patterns, "example.com", 443) is None
    assert matches_any(patterns, "\x00", 443) is None


# --- properties -------------------------------------------------------------------------------

label = st.from_regex(r"[a-z0-9](?:[a-z0-9_-]{0,10}[a-z0-9])?", fullmatch=True)
names = st.lists(label, min_size=1, max_size=4).map(".".join)
name_patterns = (
    st.lists(label, min_size=1, max_size=3)
    .map(".".join)
    .filter(lambda n: not n.rpartition(".")[2].isdigit())
)
hosts = st.one_of(names, st.text(max_size=30), st.sampled_from(["bücher.de", "EXAMPLE.com."]))


@given(hosts)
def test_normalization_is_idempotent(host: str) -> None:
    try:
        once = normalize_host(host)
    except InvalidDomain:
        return
    assert normalize_host(once) == once


@given(name_patterns, st.booleans(), hosts, st.integers(1, 65535))
def test_no_pattern_matches_outside_its_suffix(
    base: str, wildcard: bool, host: str, port: int
) -> None:
    if wildcard and "." not in base:
        base += ".test"
    pattern = parse_pattern(("*." if wildcard else "") + base)
    if pattern.matches(host, port):
        name = normalize_host(host)
        if wildcard:
            assert name.endswith("." + pattern.host) and name != pattern.host
        else:
            assert name == pattern.host


@given(name_patterns, names)
def test_appended_labels_never_match_an_exact_pattern(base: str, evil: str) -> None:
    pattern = parse_pattern(base)
    assert not pattern.matches(f"{base}.{evil}", 443)
    assert not pattern.matches(f"{base}{evil}", 443)


@given(name_patterns, st.integers(1, 65535))
def test_wildcard_never_matches_its_apex(base: str, port: int) -> None:
    base = base if "." in base else base + ".test"
    pattern = parse_pattern("*." + base)
    assert not pattern.matches(base, port)
    assert not pattern.matches(base.upper() + ".", port)
    assert pattern.matches("x." + base, port)


@given(st.text(max_size=40))
def test_parse_pattern_raises_only_invalid_domain(text: str) -> None:
    try:
        pattern = parse_pattern(text)
    except InvalidDomain:
        return
    assert parse_pattern(str(pattern)) == pattern
