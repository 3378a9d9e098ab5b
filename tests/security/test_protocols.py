"""The same rules on every protocol a sandbox can speak through the proxy: WebSocket frames
(scrubbed server-to-client, leak-scanned client-to-server) and HTTP/2 streams (injected,
scrubbed when compressed or streamed)."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest

from tests.security.conftest import API, OTHER
from tests.security.hostile import frame, read_frame
from tests.security.wire import build, open_tunnel
from tests.support.upstream import only_received_with, tagged


def _websocket(
    run, proxy, host: str, port: int, message: bytes, tag: str
) -> tuple[int, list[bytes]]:  # type: ignore[no-untyped-def]
    """Upgrade through the tunnel with the run's placeholder as Bearer, send one message, and
    collect the server's text messages (fragments joined) until it closes."""
    ph = next(iter(run.placeholders.values()))
    messages: list[bytes] = []
    with open_tunnel(run.proxy_url, f"{host}:{port}", proxy.ca_cert, sni=host) as conn:
        conn.send(
            build(
                "GET",
                tagged("/ws", tag),
                [
                    ("Host", f"{host}:{port}"),
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
                    ("Sec-WebSocket-Version", "13"),
                    ("Authorization", f"Bearer {ph}"),
                ],
            )
        )
        head = conn.read(head_only=True)
        if head.status != 101:
            return head.status, []
        conn.send(frame(0x1, message, mask=os.urandom(4)))
        conn.sock.settimeout(5)
        parts = b""
        try:
            while True:
                opcode, payload, fin = read_frame(conn.file)
                if opcode == 0x8:
                    break
                parts += payload
                if fin:
                    messages.append(parts)
                    parts = b""
        except (OSError, ValueError):
            pass
    return 101, messages


def test_websocket_messages_echoing_the_value_are_scrubbed(
    proxy, hostile, trail, canary, secret, tag
):
    secret("WS_TOKEN")
    run = proxy.register(("WS_TOKEN",))
    ph = run.placeholders["WS_TOKEN"]
    status, messages = _websocket(run, proxy, API, hostile.port, b"hello", tag)
    assert status == 101
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    assert messages == [f"token={ph}".encode()] * 2, messages
    trail.assert_contained(canary, may_reach=(API,), seen=tuple(messages))


@pytest.mark.parametrize("on_leak", ["log", "block"])
def test_websocket_message_carrying_a_placeholder_to_the_wrong_host(
    proxy, hostile, trail, canary, secret, on_leak, tag
):
    secret("WS_TOKEN", domains=[API])
    run = proxy.register(("WS_TOKEN",), allow=[OTHER], on_leak=on_leak)
    ph = run.placeholders["WS_TOKEN"]
    status, _ = _websocket(run, proxy, OTHER, hostile.port, f"key={ph}".encode(), tag)
    if on_leak == "block" and status != 101:
        assert status == 403  # the handshake itself carried the placeholder: refused
    else:
        assert status == 101
        only_received_with(hostile, tag)  # the handshake reached the upstream
        if on_leak == "block":  # (the placeholder is this run's: no other test sends it)
            assert not [m for m in list(hostile.ws_received) if ph.encode() in m]
    assert trail.leaks(run), "no placeholder_leak event"
    trail.assert_contained(canary)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        pytest.param("/sse", [], id="sse-split"),
        pytest.param("/br", ["--compressed"], id="brotli"),
        pytest.param("/drip", [], id="one-byte-chunks"),
        pytest.param("/b64", [], id="base64"),
    ],
)
def test_http2_responses_are_scrubbed(proxy, hostile, trail, canary, secret, path, extra, tag):
    secret("H2_TOKEN")
    run = proxy.register(("H2_TOKEN",))
    ph = run.placeholders["H2_TOKEN"]
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            str(proxy.ca_cert),
            "-x",
            run.proxy_url,
            "-H",
            f"Authorization: Bearer {ph}",
            "-D",
            "-",
            *extra,
            "-w",
            "\n%{http_version}",
            tagged(f"https://{API}:{hostile.port}{path}", tag),
        ],
        capture_output=True,
        timeout=30,
    )
    assert out.stdout.rsplit(b"\n", 1)[1] == b"2", out.stderr
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    body = out.stdout
    if path == "/b64":
        text = out.stdout.split(b"\r\n\r\n", 1)[1].rsplit(b"\n", 1)[0]
        text = bytes(
            c
            for c in text
            if c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        )
        body += base64.b64decode(text[: len(text) // 4 * 4])
    trail.assert_contained(canary, may_reach=(API,), seen=(body, out.stderr))


def test_http10_request_without_host_is_bound_to_the_connect_target(
    proxy, upstream, trail, canary, secret, tag
):
    secret("H10_TOKEN")
    run = proxy.register(("H10_TOKEN",))
    ph = run.placeholders["H10_TOKEN"]
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        conn.send(f"GET /echo?t={tag} HTTP/1.0\r\nAuthorization: Bearer {ph}\r\n\r\n".encode())
        resp = conn.read()
    assert resp.status == 200
    got = only_received_with(upstream, tag)
    assert got.header("Authorization") == f"Bearer {canary}"
    assert got.header("Host") in (None, f"{API}:{port}", API)
    # "?": the upstream's record of a request without a Host header (this one, on API's socket)
    trail.assert_contained(canary, may_reach=(API, "?"), seen=(resp.raw(),))
