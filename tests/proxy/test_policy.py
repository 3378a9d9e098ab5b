"""Allow/deny decisions: named cases, each with its reason."""

from __future__ import annotations

import pytest

from proxy.policy import check_binding, decide_address, decide_destination, injectable
from proxy.runs import parse_run

RUN = parse_run(
    {
        "run_id": "r-policy1",
        "secrets": [
            {"name": "GH", "placeholder": "ccph_" + "a" * 26, "domains": ["api.github.test"]},
            {
                "name": "RO",
                "placeholder": "ccph_" + "b" * 26,
                "domains": ["*.ro.test"],
                "methods": ["GET"],
                "paths": ["/v1/*"],
            },
        ],
        "allow": ["pypi.test"],
        "resolve": ["internal.test:10.0.0.5"],
        "allow_cidr": ["192.0.2.0/24"],
    }
)


@pytest.mark.parametrize(
    ("host", "port", "allowed", "reason"),
    [
        ("api.github.test", 443, True, "allowlisted"),
        ("API.GitHub.Test.", 443, True, "allowlisted"),
        ("pypi.test", 8443, True, "allowlisted"),
        ("x.ro.test", 443, True, "allowlisted"),
        ("ro.test", 443, False, "not_allowlisted"),
        ("api.github.test.evil.test", 443, False, "not_allowlisted"),
        ("evilapi.github.test", 443, False, "not_allowlisted"),
        ("127.0.0.1", 443, False, "ip_literal"),
        ("2130706433", 443, False, "ip_literal"),
        ("::ffff:127.0.0.1", 443, False, "ip_literal"),
        ("192.0.2.10", 443, True, "cidr_allowed"),
    ],
    ids=lambda v: str(v),
)
def test_decide_destination(host, port, allowed, reason):
    d = decide_destination(RUN, host, port)
    assert (d.allowed, d.reason) == (allowed, reason)
    if not allowed:
        assert d.detail


def test_unknown_run_is_refused():
    assert decide_destination(None, "api.github.test", 443).reason == "unknown_client"


@pytest.mark.parametrize(
    ("host", "ip", "allowed", "reason"),
    [
        ("api.github.test", "93.184.215.14", True, "public_address"),
        ("api.github.test", "127.0.0.1", False, "address_loopback"),
        ("api.github.test", "10.1.2.3", False, "address_private"),
        ("api.github.test", "169.254.169.254", False, None),
        ("api.github.test", "::ffff:10.0.0.1", False, None),
        ("internal.test", "10.0.0.5", True, "resolve_mapped"),
        ("api.github.test", "192.0.2.9", True, "cidr_allowed"),
    ],
)
def test_decide_address(host, ip, allowed, reason):
    d = decide_address(RUN, host, ip)
    assert d.allowed is allowed
    if reason:
        assert d.reason == reason
    if not allowed:
        assert d.reason.startswith("address_") and "--resolve" in d.detail


@pytest.mark.parametrize(
    ("hosts", "authority", "reason"),
    [
        (["api.github.test"], None, "bound"),
        (["API.github.test:443"], None, "bound"),
        (["api.github.test:8443"], None, "host_mismatch"),
        (["evil.test"], None, "host_mismatch"),
        (["api.github.test", "evil.test"], None, "duplicate_host"),
        ([], "evil.test", "host_mismatch"),
        ([], "api.github.test", "bound"),
        (["[::1]:443"], None, "host_mismatch"),
    ],
)
def test_check_binding(hosts, authority, reason):
    assert check_binding("api.github.test", 443, hosts, authority).reason == reason


@pytest.mark.parametrize(
    ("host", "method", "path", "tls", "names"),
    [
        ("api.github.test", "POST", "/x", True, ["GH"]),
        ("api.github.test", "GET", "/x", False, []),
        ("a.ro.test", "GET", "/v1/items", True, ["RO"]),
        ("a.ro.test", "POST", "/v1/items", True, []),
        ("a.ro.test", "GET", "/v2/items", True, []),
        ("pypi.test", "GET", "/", True, []),
    ],
)
def test_injectable_respects_domains_methods_paths_and_tls(host, method, path, tls, names):
    assert [s.name for s in injectable(RUN, host, 443, method, path, tls=tls)] == names
