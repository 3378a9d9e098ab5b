"""Attacks on opaque hosts (``--allow-opaque``): the tunnel is not intercepted, so every check
left is at its edge. The SNI must name the CONNECT target; the checked address is the only one
dialled; no secret is ever for an opaque host, so a placeholder sent there stays a placeholder;
hosts that are not opaque keep their interception (and injection) in the same run; the audit
line counts exactly the bytes that went each way."""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path

import pytest

from core.errors import RegistrationRefused
from core.placeholders import mint
from proxy import control
from tests.conftest import client_for
from tests.security.conftest import API, OTHER, Trail
from tests.security.pressure import wait_for
from tests.security.wire import connect
from tests.support.harness import ProxyHarness, Run
from tests.support.upstream import Upstream, only_received_with, received_with, tagged


def lines_of(proxy: ProxyHarness, run: Run, n: int = 1) -> list[dict[str, object]]:
    wait_for(f"{n} audit line(s)", lambda: len(proxy.audit_for(run)) >= n)
    return proxy.audit_for(run)


def counted_exchange(
    sock: socket.socket, request: bytes, *, sni: str, ca: Path
) -> tuple[bytes, int, int]:
    """TLS over an open tunnel: send ``request``, read until the server closes. Returns the
    plaintext answer and the raw bytes sent and received on the socket (TLS included)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    sent = received = 0

    def flush() -> None:
        nonlocal sent
        data = outgoing.read()
        if data:
            sock.sendall(data)
            sent += len(data)

    def fill() -> bool:
        nonlocal received
        data = sock.recv(65536)
        if not data:
            incoming.write_eof()
            return False
        received += len(data)
        incoming.write(data)
        return True

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            if not fill():
                raise ConnectionError("closed during the handshake") from None
    tls.write(request)
    answer = b""
    while True:
        flush()
        try:
            chunk = tls.read(65536)
        except ssl.SSLWantReadError:
            if not fill():
                break
            continue
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        answer += chunk
    flush()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # (a makefile of the caller's may keep it open)
    sock.close()
    return answer, sent, received


def test_sni_of_another_host_on_an_opaque_tunnel_is_refused(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, trail: Trail, tag: str
) -> None:
    """Domain fronting: CONNECT to the opaque host, then TLS naming a host the run may not
    reach (served at the same address). Nothing reaches the upstream."""
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    assert resp.status == 200
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        tls = ctx.wrap_socket(conn.sock, server_hostname=OTHER)
        tls.sendall(f"GET /echo?t={tag} HTTP/1.1\r\nHost: {OTHER}\r\n\r\n".encode())
        tls.recv(1)
    conn.close()
    [line] = lines_of(proxy, run)
    assert line["decision"] == "deny" and line["reason"] == "sni_mismatch"
    assert line["bytes_up"] == 0 and line["bytes_down"] == 0
    assert received_with(upstream, tag) == []


def test_tls_without_sni_on_an_opaque_tunnel_is_refused(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, tag: str
) -> None:
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    assert resp.status == 200
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(conn.sock, server_hostname=None).recv(1)
    conn.close()
    [line] = lines_of(proxy, run)
    assert line["reason"] == "sni_mismatch" and line["bytes_up"] == 0


def test_a_placeholder_sent_to_an_opaque_host_goes_out_as_the_placeholder(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, trail: Trail, secret, canary, tag
) -> None:  # type: ignore[no-untyped-def]
    """The secret is for another host; the opaque host gets the placeholder, never the value
    (nothing there is swapped: the proxy cannot see inside the tunnel)."""
    secret("OPAQUE_TOKEN", domains=[OTHER])
    run = proxy.register(("OPAQUE_TOKEN",), allow_opaque=[API])
    ph = run.placeholders["OPAQUE_TOKEN"]
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    assert resp.status == 200
    request = (
        f"GET {tagged('/echo', tag)} HTTP/1.1\r\nHost: {API}\r\nAuthorization: Bearer {ph}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer, _, _ = counted_exchange(conn.sock, request, sni=API, ca=ca_file)
    got = only_received_with(upstream, tag)
    assert got.header("Authorization") == f"Bearer {ph}"
    assert ph.encode() in answer
    trail.assert_contained(canary, seen=(answer,))


def test_a_non_opaque_host_next_to_an_opaque_one_is_still_injected(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, trail: Trail, secret, canary, tag
) -> None:  # type: ignore[no-untyped-def]
    secret("NEXT_TOKEN", domains=[OTHER])
    run = proxy.register(("NEXT_TOKEN",), allow_opaque=[API])
    ph = run.placeholders["NEXT_TOKEN"]
    with client_for(run, proxy.ca_cert) as client:
        resp = client.get(
            tagged(f"https://{OTHER}:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert resp.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    assert canary not in resp.text  # scrubbed on the way back, as ever
    trail.assert_contained(canary, may_reach=(OTHER,), seen=(resp.content,))


def test_an_opaque_pattern_over_a_secret_domain_is_refused_at_registration(
    proxy: ProxyHarness, secret
) -> None:  # type: ignore[no-untyped-def]
    secret("COVERED_TOKEN", domains=[API])
    request = {
        "op": "register",
        "run_id": "r-opaque-covered",
        "secrets": {"COVERED_TOKEN": mint()},
        "allow_opaque": ["*.coatcheck.test"],
    }
    with pytest.raises(RegistrationRefused) as exc:
        control.call(proxy.paths.control, request)
    message = str(exc.value)
    assert "*.coatcheck.test" in message and API in message and "COVERED_TOKEN" in message
    assert "opaque hosts get no secret" in message


def test_an_opaque_host_resolving_to_loopback_is_not_dialled(
    proxy: ProxyHarness, hostile, trail: Trail
) -> None:  # type: ignore[no-untyped-def]
    """``localhost`` has no --resolve mapping: it resolves to loopback, refused as for any
    allowed host (an opaque host gets the same address checks)."""
    run = proxy.register(allow_opaque=["localhost"])
    conn, resp = connect(run.proxy_url, f"localhost:{hostile.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "address_loopback"
    [line] = lines_of(proxy, run)
    assert line["decision"] == "deny" and line["reason"] == "address_loopback"
    assert line["address"] is None and line["bytes_up"] == 0


def test_an_opaque_tunnel_to_an_ip_literal_is_not_opaque(
    proxy: ProxyHarness, upstream: Upstream
) -> None:
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"127.0.0.1:{upstream.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "ip_literal"


def test_the_audit_line_counts_the_bytes_each_way(
    proxy: ProxyHarness, upstream: Upstream, ca_file: Path, tag: str
) -> None:
    run = proxy.register(allow_opaque=[API])
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    assert resp.status == 200
    request = (
        f"GET {tagged('/big?size=200000', tag)} HTTP/1.1\r\nHost: {API}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    answer, sent, received = counted_exchange(conn.sock, request, sni=API, ca=ca_file)
    assert answer.endswith(b"x" * 1000) and b"200000" in answer
    [line] = lines_of(proxy, run)
    assert (line["bytes_up"], line["bytes_down"]) == (sent, received)
    assert line["reason"] == "opaque" and line["decision"] == "allow"
