"""Scrub responses: a real value a hostile or careless upstream sends back, in headers or
bodies, encoded, compressed, streamed or split across chunks, reaches the sandbox only as its
placeholder. Each case also decodes the response the way a client would, and looks for the
canary's distinctive core in everything the client can derive."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from urllib.parse import unquote

import pytest

from tests.conftest import client_for
from tests.security.conftest import API

# A token-shaped value: base64-ish punctuation that JSON, URL and HTML encoders each escape.
SUFFIX = "/a+b=&<c>"


def _b64(data: bytes) -> bytes:
    data = data.strip()
    try:
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _b64url(data: bytes) -> bytes:
    data = data.strip()
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _json_token(data: bytes) -> bytes:
    try:
        return json.loads(data)["token"].encode()
    except (ValueError, KeyError, TypeError):
        return b""


def _nested(data: bytes) -> bytes:
    try:
        return _json_token(json.loads(data)["doc"].encode())
    except (ValueError, KeyError, TypeError):
        return b""


Decode = Callable[[bytes], bytes]
CASES: list = [
    # (upstream, path, value suffix, decoder of the body as a client would read it)
    pytest.param("session", "/echo-header", SUFFIX, None, id="echo-in-headers-and-cookie"),
    pytest.param("session", "/echo", SUFFIX, None, id="json-body-echo"),
    pytest.param("session", "/gzip-echo", SUFFIX, None, id="gzip-json-echo"),
    pytest.param("hostile", "/reason", SUFFIX, None, id="status-reason-phrase"),
    pytest.param("hostile", "/header-name", "", None, id="header-name"),
    pytest.param("hostile", "/b64", SUFFIX, _b64, id="base64"),
    pytest.param("hostile", "/b64url", SUFFIX, _b64url, id="base64url"),
    pytest.param("hostile", "/basic-b64", SUFFIX, _b64, id="basic-credential-base64"),
    pytest.param(
        "hostile", "/pct", SUFFIX, lambda b: unquote(b.decode()).encode(), id="percent-encoded"
    ),
    pytest.param("hostile", "/json-slash", SUFFIX, _json_token, id="json-escaped-slashes"),
    pytest.param("hostile", "/json-html", SUFFIX, _json_token, id="json-html-escaped"),
    pytest.param("hostile", "/nested-json", '"q\\z', _nested, id="json-escaped-twice"),
    pytest.param("hostile", "/drip", SUFFIX, None, id="one-byte-chunks"),
    pytest.param("hostile", "/sse", SUFFIX, None, id="sse-split-across-chunks"),
    pytest.param("hostile", "/br", SUFFIX, _json_token, id="brotli"),
    pytest.param("hostile", "/deflate", SUFFIX, _json_token, id="deflate"),
    pytest.param("hostile", "/zstd", SUFFIX, _json_token, id="zstd"),
    pytest.param(
        "hostile",
        "/gzip-split-ce",
        SUFFIX,
        _json_token,
        id="gzip-with-split-content-encoding-headers",
    ),
]


@pytest.mark.parametrize(("which", "path", "suffix", "decode"), CASES)
def test_hostile_upstream_echo_reaches_the_client_only_as_the_placeholder(
    proxy, upstream, hostile, trail, canary, secret, which, path, suffix, decode
):
    value = canary + suffix
    secret("ECHO_TOKEN", value=value)
    run = proxy.register(("ECHO_TOKEN",))
    ph = run.placeholders["ECHO_TOKEN"]
    port = (upstream if which == "session" else hostile).port
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(f"https://{API}:{port}{path}", headers={"Authorization": f"Bearer {ph}"})
    server = upstream if which == "session" else hostile
    assert server.received[-1].header("Authorization") == f"Bearer {value}", "not injected"
    views = [r.content, r.reason_phrase.encode(), str(r.headers.raw).encode()]
    if decode is not None:
        views.append(decode(r.content))
    for view in views:
        assert canary.encode() not in view, f"the value's core {canary} reached the client"
    trail.assert_contained(value, may_reach=(API,), seen=tuple(views))
    trail.assert_contained(canary, may_reach=(API,))


def test_redirect_location_echoing_the_value_is_scrubbed(proxy, hostile, trail, canary, secret):
    secret("ECHO_TOKEN")
    run = proxy.register(("ECHO_TOKEN",))
    ph = run.placeholders["ECHO_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://{API}:{hostile.port}/redirect-echo", headers={"Authorization": f"Bearer {ph}"}
        )
    assert r.status_code == 302
    assert r.headers["location"].endswith(f"?t={ph}")
    trail.assert_contained(canary, may_reach=(API,), seen=(r.content, str(r.headers.raw)))


def test_a_value_from_a_host_allowed_without_it_never_reaches_the_run(
    proxy, upstream, trail, canary, secret, vault_secret
):
    """An upstream on a host allowed *without* that secret echoes a value it obtained
    elsewhere (here: sent to it by the test as if leaked): the run's responses never carry
    any of the run's real values, whatever host they come from. The request carried no value,
    so this is an incident, refused (tests/security/test_timing_oracle.py), not scrubbed."""
    secret("ECHO_TOKEN")
    run = proxy.register(("ECHO_TOKEN",), allow=["other.coatcheck.test"])
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://other.coatcheck.test:{upstream.port}/echo", headers={"X-Stolen": canary}
        )
    assert (r.status_code, r.headers.get("x-coatcheck-reason")) == (502, "unexpected_value")
    assert canary not in r.text and canary not in str(r.headers.raw)
