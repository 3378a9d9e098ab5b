"""Audit truth: an audit line names a secret as injected only if the request carrying its value
left the proxy. A request refused after its header was swapped (a leak in its body under
``--on-leak block``, a body too large to inspect, a compressed or undecodable body) or whose
upstream could not be reached (TLS verification failed) has ``secrets_injected: []``.
The refusal by an internal error is checked on the addon (tests/proxy/test_audit.py).
"""

from __future__ import annotations

import gzip
import json

import pytest
import trustme

from tests.security.channels_server import ChannelServer
from tests.security.conftest import API, OTHER
from tests.security.wire import Closed, build, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged

MIB = 1024 * 1024


def _post(run, proxy, port, path, headers, body=b""):  # type: ignore[no-untyped-def]
    ph = run.placeholders["AT_TOKEN"]
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}"), *headers]
        return conn.request("POST", path, head, body)


def _lines(trail, run):  # type: ignore[no-untyped-def]
    return [(e["status"], e["reason"], e["secrets_injected"]) for e in trail.requests(run)]


def test_a_request_that_left_names_its_secret(proxy, upstream, trail, canary, secret, tag):
    secret("AT_TOKEN")
    run = proxy.register(("AT_TOKEN",))
    resp = _post(run, proxy, upstream.port, tagged("/echo", tag), [], b"{}")
    assert resp.status == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    assert _lines(trail, run) == [(200, "allowlisted", ["AT_TOKEN"])]


def test_body_leak_refused_under_on_leak_block_names_no_secret(
    proxy, upstream, trail, canary, secret, vault_secret, tag
):
    secret("AT_TOKEN")
    vault_secret("AT_OTHER", canary + "-other", [OTHER])
    run = proxy.register(("AT_TOKEN", "AT_OTHER"), on_leak="block")
    body = json.dumps({"stolen": run.placeholders["AT_OTHER"]}).encode()
    ctype = [("Content-Type", "application/json")]
    resp = _post(run, proxy, upstream.port, tagged("/echo", tag), ctype, body)
    assert (resp.status, resp.refusal) == (403, "placeholder_leak")
    assert received_with(upstream, tag) == []
    assert _lines(trail, run) == [(403, "placeholder_leak", [])]
    trail.assert_contained(canary, seen=(resp.raw(),))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(None, "compressed_body", id="415-compressed-body-with-a-placeholder"),
        pytest.param(b"\x1f\x8bnot gzip at all", "undecodable_body", id="415-undecodable-body"),
    ],
)
def test_body_refused_with_415_names_no_secret(
    proxy, upstream, trail, canary, secret, body, reason, tag
):
    secret("AT_TOKEN", surfaces=["header", "body"])
    run = proxy.register(("AT_TOKEN",))
    if body is None:
        body = gzip.compress(json.dumps({"k": run.placeholders["AT_TOKEN"]}).encode())
    headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    resp = _post(run, proxy, upstream.port, tagged("/echo", tag), headers, body)
    assert (resp.status, resp.refusal) == (415, reason)
    assert received_with(upstream, tag) == []
    assert _lines(trail, run) == [(415, reason, [])]


def test_body_too_large_to_inspect_names_no_secret(proxy, upstream, trail, canary, secret, tag):
    """A chunked body (no declared length) over the inspection cap, for a body-surface secret:
    refused once it is over, after the header was swapped."""
    secret("AT_TOKEN", surfaces=["header", "body"])
    run = proxy.register(("AT_TOKEN",))
    ph, port = run.placeholders["AT_TOKEN"], upstream.port
    chunk = b"x" * MIB
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")]
        conn.send(build("POST", tagged("/echo", tag), [*head, ("Transfer-Encoding", "chunked")]))
        try:
            for _ in range(17):
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the proxy answered and closed before the rest
        try:
            resp = conn.read()
        except Closed:
            resp = None
    assert resp is None or resp.status in (413, 429)
    assert received_with(upstream, tag) == []
    [(status, _, injected)] = _lines(trail, run)
    assert status in (0, 413, 429) and injected == []


def test_upstream_failing_tls_verification_names_no_secret(
    proxy, test_ca, trail, canary, secret, tag
):
    """The request never reached an upstream the proxy could verify: it carried no value."""
    untrusted = ChannelServer(trustme.CA(), (API,)).start()
    try:
        secret("AT_TOKEN")
        run = proxy.register(("AT_TOKEN",))
        resp = _post(run, proxy, untrusted.port, tagged("/ok", tag), [])
    finally:
        untrusted.close()
    assert resp.status == 502
    assert untrusted.received == []
    [(_, _, injected)] = _lines(trail, run)
    assert injected == []
    trail.assert_contained(canary, seen=(resp.raw(),))
