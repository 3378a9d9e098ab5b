"""Resolve, check, then dial the checked address. IP literals in any spelling are refused
unless an operator allowed their range; a name that resolves to loopback (or flips to it after
the check) is never dialled."""

from __future__ import annotations

import asyncio
import io

import pytest
from mitmproxy import connection, http
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from proxy.addon import Coatcheck, run_peername
from proxy.audit import Audit
from proxy.engine import DictValues, Engine
from proxy.runs import parse_run
from tests.security.conftest import API
from tests.security.wire import connect, open_tunnel, plain_conn
from tests.support.upstream import only_received_with, received_with, tagged

IP_TARGETS = [
    pytest.param("127.0.0.1", id="dotted-quad"),
    pytest.param("2130706433", id="decimal"),
    pytest.param("0x7f000001", id="hex"),
    pytest.param("0177.0.0.1", id="octal"),
    pytest.param("127.1", id="short-form"),
    pytest.param("[::1]", id="ipv6-loopback"),
    pytest.param("[::ffff:127.0.0.1]", id="ipv4-mapped"),
    pytest.param("[::ffff:7f00:1]", id="ipv4-mapped-hex"),
    pytest.param("[64:ff9b::7f00:1]", id="nat64"),
    pytest.param("[2002:7f00:1::]", id="6to4"),
    pytest.param("169.254.169.254", id="cloud-metadata"),
    pytest.param("[fe80::1%25lo]", id="ipv6-zone-id"),
]


@pytest.fixture
def run(proxy, secret):  # type: ignore[no-untyped-def]
    secret("ADDR_TOKEN")
    return proxy.register(("ADDR_TOKEN",))


@pytest.mark.parametrize("target", IP_TARGETS)
def test_ip_literal_connect_targets_are_refused(proxy, hostile, trail, canary, run, target):
    conn, resp = connect(run.proxy_url, f"{target}:{hostile.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "ip_literal", (resp.status, resp.refusal)
    assert [e["reason"] for e in trail.requests(run)] == ["ip_literal"]
    trail.assert_contained(canary, seen=(resp.raw(),))


@pytest.mark.parametrize("target", ["2130706433", "0x7f000001", "[::ffff:127.0.0.1]"])
def test_ip_literal_absolute_form_plain_http_is_refused(
    proxy, plain, trail, canary, run, target, tag
):
    ph = run.placeholders["ADDR_TOKEN"]
    with plain_conn(run.proxy_url) as conn:
        resp = conn.request(
            "GET",
            tagged(f"http://{target}:{plain.port}/", tag),
            [("Host", f"{target}:{plain.port}"), ("Authorization", f"Bearer {ph}")],
        )
    assert resp.status == 403 and resp.refusal == "ip_literal"
    assert received_with(plain, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_allow_cidr_opens_the_range_but_never_the_secret(
    proxy, hostile, trail, canary, secret, tag
):
    """``--allow-cidr 127.0.0.0/8`` admits 127.0.0.1 (the hostile upstream's cert has that IP),
    but an address is not one of the secret's domains: the placeholder goes as it is, and the
    leak is logged."""
    secret("CIDR_TOKEN")
    run = proxy.register(("CIDR_TOKEN",), allow_cidr=["127.0.0.0/8"])
    ph = run.placeholders["CIDR_TOKEN"]
    with open_tunnel(
        run.proxy_url, f"127.0.0.1:{hostile.port}", proxy.ca_cert, sni="127.0.0.1"
    ) as conn:
        resp = conn.request(
            "GET",
            tagged("/ok", tag),
            [("Host", f"127.0.0.1:{hostile.port}"), ("Authorization", f"Bearer {ph}")],
        )
    assert resp.status == 200
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {ph}"
    assert trail.requests(run)[-1]["reason"] == "cidr_allowed"
    assert trail.leaks(run)[-1]["leaked_placeholders"] == ["CIDR_TOKEN"]
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_allow_cidr_for_another_range_does_not_open_loopback(proxy, hostile, trail, canary, secret):
    secret("CIDR_TOKEN")
    run = proxy.register(("CIDR_TOKEN",), allow_cidr=["10.0.0.0/8"])
    for target in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]"):
        conn, resp = connect(run.proxy_url, f"{target}:{hostile.port}")
        conn.close()
        assert resp.status == 403 and resp.refusal == "ip_literal", target
    trail.assert_contained(canary)


def test_allowlisted_name_resolving_to_loopback_is_not_dialled(
    proxy, hostile, trail, canary, secret
):
    """DNS rebinding: ``localhost`` is on the secret's domains but has no --resolve mapping;
    it resolves to 127.0.0.1 / ::1, which the proxy refuses to dial."""
    secret("REBIND_TOKEN", domains=["localhost"])
    run = proxy.register(("REBIND_TOKEN",))
    conn, resp = connect(run.proxy_url, f"localhost:{hostile.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "address_loopback"
    [line] = trail.requests(run)
    assert line["reason"] == "address_loopback" and line["decision"] == "deny"
    trail.assert_contained(canary, seen=(resp.raw(),))


# -- resolve once, dial what was checked (unit level: no sockets) ---------------------------

ALLOWED_NET = "198.51.100.0/24"  # documentation range, allowed by --allow-cidr in these runs


def _run(**kw: object):  # type: ignore[no-untyped-def]
    return parse_run(
        {"run_id": "r-rebind01", "allow": ["rebind.test"], "allow_cidr": [ALLOWED_NET], **kw}
    )


class FlippingResolver:
    """First answer: the allowed address; every later answer: loopback (a rebinding DNS)."""

    def __init__(self, first: list[str], later: list[str]) -> None:
        self.first, self.later, self.calls = first, later, 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls += 1
        return self.first if self.calls == 1 else self.later


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        pytest.param(
            ["127.0.0.1", "10.1.2.3", "198.51.100.7"],
            "198.51.100.7",
            id="private-first-then-allowed",
        ),
        pytest.param(["198.51.100.7", "127.0.0.1"], "198.51.100.7", id="allowed-first"),
        pytest.param(["::ffff:127.0.0.1", "169.254.169.254", "fd00::1"], None, id="all-internal"),
    ],
)
def test_pick_address_checks_every_answer_and_returns_an_allowed_one(answers, expected):
    resolver = FlippingResolver(answers, ["127.0.0.1"])
    engine = Engine(DictValues(), resolver=resolver)
    address, decision = asyncio.run(engine.pick_address(_run(), "rebind.test", 443))
    assert resolver.calls == 1
    if expected is None:
        assert not decision.allowed and decision.reason.startswith("address_")
        assert address == ""
    else:
        assert decision.allowed and address == expected


def test_dialled_address_is_the_checked_one_even_when_dns_flips():
    """The addon resolves once at CONNECT; every (re)connect dials the checked address and
    never asks DNS again, so a rebinding answer (127.0.0.1) is never used."""
    resolver = FlippingResolver(["198.51.100.7"], ["127.0.0.1"])
    engine = Engine(DictValues(), resolver=resolver)
    run = _run()
    engine.register(run)
    addon = Coatcheck(engine, Audit(io.StringIO()))
    with taddons.context(addon):
        f = tflow.tflow()
        f.client_conn.peername = run_peername(run.run_id)
        f.request = http.Request.make("CONNECT", "https://rebind.test:443/")
        asyncio.run(addon.http_connect(f))
        assert f.response is None
        dialled = []
        for _ in range(3):
            server = connection.Server(address=("rebind.test", 443))
            data = server_hooks.ServerConnectionHookData(server=server, client=f.client_conn)
            asyncio.run(addon.server_connect(data))
            assert data.server.error is None
            dialled.append(data.server.address)
    assert dialled == [("198.51.100.7", 443)] * 3
    assert resolver.calls == 1


def test_unchecked_destination_is_never_dialled():
    """A server connection the CONNECT check never saw (another host) gets an error, not a
    fresh DNS lookup."""
    resolver = FlippingResolver(["198.51.100.7"], ["127.0.0.1"])
    engine = Engine(DictValues(), resolver=resolver)
    run = _run(allow=["rebind.test", "other.test"])
    engine.register(run)
    addon = Coatcheck(engine, Audit(io.StringIO()))
    with taddons.context(addon):
        f = tflow.tflow()
        f.client_conn.peername = run_peername(run.run_id)
        f.request = http.Request.make("CONNECT", "https://rebind.test:443/")
        asyncio.run(addon.http_connect(f))
        server = connection.Server(address=("other.test", 443))
        data = server_hooks.ServerConnectionHookData(server=server, client=f.client_conn)
        asyncio.run(addon.server_connect(data))
    assert data.server.error and "not checked" in data.server.error
    assert data.server.address == ("other.test", 443)
    assert resolver.calls == 1


def test_api_name_is_mapped_not_resolved(proxy, upstream, trail, canary, run):
    """Control: the session proxy maps api.coatcheck.test to 127.0.0.1 explicitly (the
    operator's --resolve), which is why it may be dialled at all."""
    ph = run.placeholders["ADDR_TOKEN"]
    with open_tunnel(run.proxy_url, f"{API}:{upstream.port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request(
            "GET", "/echo", [("Host", f"{API}:{upstream.port}"), ("Authorization", f"Bearer {ph}")]
        )
    assert resp.status == 200
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))
