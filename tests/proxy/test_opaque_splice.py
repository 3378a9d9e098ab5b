"""Opaque tunnels through the real service: spliced (the client sees the upstream's own
certificate), audited once with bytes each way, refused with a reason where the checks say so,
and everything else on the same run still goes to the intercepting proxy."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import pytest

from tests.conftest import client_for
from tests.security.pressure import wait_for
from tests.security.wire import connect, plain_conn
from tests.support.harness import ProxyHarness, Run
from tests.support.upstream import Upstream, only_received_with, received_with, tagged

API = "api.coatcheck.test"
OTHER = "other.coatcheck.test"


def opaque_client(run: Run, ca_file: Path) -> httpx.Client:
    """A client through the run's proxy that trusts only the upstream's CA (not the proxy's):
    it can only succeed on a tunnel the proxy does not intercept."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    return httpx.Client(proxy=run.proxy_url, verify=ctx, timeout=15, trust_env=False)


def opaque_lines(proxy: ProxyHarness, run: Run, n: int = 1) -> list[dict[str, object]]:
    """The run's audit lines once there are ``n`` (an opaque line is written when its tunnel
    has ended on both sides)."""
    wait_for(f"{n} audit line(s)", lambda: len(proxy.audit_for(run)) >= n)
    return proxy.audit_for(run)


def test_download_is_spliced_and_audited_once(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, tag: str
) -> None:
    run = proxy.register(allow_opaque=[API])
    size = 3 * 1024 * 1024 + 17
    with opaque_client(run, ca_file) as client:
        resp = client.get(tagged(f"https://{API}:{upstream.port}/big?size={size}", tag))
    assert resp.status_code == 200 and len(resp.content) == size
    only_received_with(upstream, tag)
    [line] = opaque_lines(proxy, run)
    assert line["method"] == "CONNECT" and line["host"] == API and line["port"] == upstream.port
    assert line["decision"] == "allow" and line["reason"] == "opaque" and line["status"] == 200
    assert line["address"] == "127.0.0.1" and line["secrets_injected"] == []
    assert isinstance(line["bytes_down"], int) and line["bytes_down"] > size
    assert isinstance(line["bytes_up"], int) and 0 < line["bytes_up"] < 64 * 1024
    assert isinstance(line["duration_ms"], float | int) and line["path"] is None


def test_upload_is_spliced(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, tag: str
) -> None:
    run = proxy.register(allow_opaque=[API])
    body = bytes(range(256)) * 2048  # 512 KiB
    with opaque_client(run, ca_file) as client:
        resp = client.post(tagged(f"https://{API}:{upstream.port}/echo", tag), content=body)
    assert resp.status_code == 200
    assert only_received_with(upstream, tag).body == body
    [line] = opaque_lines(proxy, run)
    assert isinstance(line["bytes_up"], int) and line["bytes_up"] > len(body)


def test_the_proxy_certificate_does_not_work_on_an_opaque_host(
    proxy: ProxyHarness, upstream: Upstream, tag: str
) -> None:
    """Not intercepted: a client that trusts only the proxy's CA fails the upstream's TLS."""
    run = proxy.register(allow_opaque=[API])
    with client_for(run, proxy.ca_cert) as client, pytest.raises(httpx.ConnectError):
        client.get(tagged(f"https://{API}:{upstream.port}/echo", tag))


def test_other_hosts_of_the_run_are_still_intercepted(
    proxy: ProxyHarness, upstream: Upstream, tag: str
) -> None:
    run = proxy.register(allow=[OTHER], allow_opaque=[API])
    with client_for(run, proxy.ca_cert) as client:
        resp = client.get(tagged(f"https://{OTHER}:{upstream.port}/echo", tag))
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get(tagged(f"https://evil.test:{upstream.port}/echo", tag))
    assert resp.status_code == 200
    lines = opaque_lines(proxy, run, 2)
    got = {(e["method"], e["reason"]) for e in lines}
    assert got == {("GET", "allowlisted"), ("CONNECT", "not_allowlisted")}


def test_plain_http_on_a_run_with_opaque_hosts_goes_to_the_proxy(
    proxy: ProxyHarness, tag: str
) -> None:
    """The first bytes read to look for a CONNECT are given back to mitmproxy whole."""
    run = proxy.register(allow_opaque=[API])
    with plain_conn(run.proxy_url) as conn:
        resp = conn.request("GET", f"http://{OTHER}/echo?t={tag}", [("Host", OTHER)])
    assert resp.status == 403 and resp.refusal == "not_allowlisted"


def test_connect_to_an_opaque_host_on_another_port_is_not_opaque(
    proxy: ProxyHarness, upstream: Upstream
) -> None:
    run = proxy.register(allow_opaque=[f"{API}:443"])
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "not_allowlisted"


def test_a_dead_opaque_host_is_a_502(proxy: ProxyHarness) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"{API}:{port}")
    conn.close()
    assert resp.status == 502 and resp.refusal == "dial_failed"
    [line] = opaque_lines(proxy, run)
    assert line["decision"] == "deny" and line["reason"] == "dial_failed"
    assert line["status"] == 502 and line["address"] == "127.0.0.1"


def test_non_tls_bytes_on_an_opaque_tunnel_are_not_passed_on(
    proxy: ProxyHarness, upstream: Upstream, tag: str
) -> None:
    """A plain HTTP request is answered with the refusal (its client can read it), then the
    tunnel is closed; nothing reaches the upstream."""
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    assert resp.status == 200
    conn.send(f"GET /echo?t={tag} HTTP/1.1\r\nHost: {API}\r\n\r\n".encode())
    refused = conn.read()
    assert refused.status == 403 and refused.refusal == "not_tls"
    assert conn.is_closed()
    conn.close()
    [line] = opaque_lines(proxy, run)
    assert line["decision"] == "deny" and line["reason"] == "not_tls"
    assert line["bytes_up"] == 0 and line["bytes_down"] == 0
    assert received_with(upstream, tag) == []
