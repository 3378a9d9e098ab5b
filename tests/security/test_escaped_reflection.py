"""Scrubbing by meaning: a hostile upstream reflects the credential it received spelled so that
no byte-for-byte search finds it (every character ``\\uXXXX``-escaped, some escaped, chunk
boundaries inside the escapes, percent-encoded in a mix, escaped twice, base64 with line breaks
or JSON escapes), and a client that parses the JSON or decodes the URL would read the real
value. Each attack checks where the value went (the upstream received it, injected by the
proxy) and where it did not: the client behind the proxy, in the raw body and in everything a
client can decode from it (JSON strings, JSON inside them, percent-decoding, base64)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import pytest

from tests.conftest import client_for
from tests.security.conftest import API

# Characters that JSON, URL and HTML-safe encoders each treat differently.
SUFFIX = "/a+b=&<c>"


def _strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
        nested = _json(doc)
        if nested is not None:
            yield from _strings(nested)
    elif isinstance(doc, dict):
        for k, v in doc.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(doc, list):
        for item in doc:
            yield from _strings(item)


def _json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _b64(text: str) -> list[bytes]:
    out = []
    for run in re.findall(r"[A-Za-z0-9+/=_-]{8,}", re.sub(r"\s+", "", text)):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(decode(run + "=" * (-len(run) % 4)))
    return out


def decoded_views(body: bytes) -> list[bytes]:
    """The body and what a client can decode from it, twice over."""
    text = body.decode("utf-8", "replace")
    doc = _json(body)
    if doc is None and text.startswith("data: "):  # a server-sent event
        doc = _json(text.removeprefix("data: ").strip())
    texts = [text, *(_strings(doc) if doc is not None else ())]
    views: list[bytes] = []
    for t in texts:
        for once in (t, unquote(t), unquote_plus(t)):
            for twice in (once, unquote(once)):
                views.append(twice.encode("utf-8", "surrogateescape"))
                views += _b64(twice)
    return views


def _assert_never_seen(canary: str, value: str, views: list[bytes]) -> None:
    for view in views:
        assert canary.encode() not in view, f"the real value reached the client: {view[:120]!r}"
        assert value.encode() not in view


ATTACKS = {
    "every-char-u-escaped": "/json-u-all",
    "every-other-char-u-escaped-go-style": "/json-u-partial",
    "chunked-boundaries-inside-escapes": "/json-u-chunked",
    "sse-split-inside-escapes": "/json-u-sse",
    "gzip-chunked-u-escaped": "/json-u-gzip",
    "json-in-json-u-escaped": "/json-in-json-u",
    "percent-mixed-case-and-unescaped": "/pct-mixed",
    "url-in-json-percent-as-u0025": "/url-in-json",
    "base64-mime-wrapped": "/b64-mime",
    "base64-in-json-slash-and-plus-escaped": "/b64-in-json",
}


@pytest.mark.parametrize("path", ATTACKS.values(), ids=ATTACKS.keys())
def test_escaped_reflection_reaches_the_client_only_as_the_placeholder(
    proxy, hostile, trail, canary, secret, path
):
    value = canary + SUFFIX
    secret("ECHO_TOKEN", value=value)
    run = proxy.register(("ECHO_TOKEN",))
    ph = run.placeholders["ECHO_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(f"https://{API}:{hostile.port}{path}", headers={"Authorization": f"Bearer {ph}"})
    assert r.status_code == 200
    # Where it went: the upstream got the real value, injected by the proxy.
    assert hostile.received[-1].header("Authorization") == f"Bearer {value}", "not injected"
    # Where it did not: the client, in any form it can decode.
    views = decoded_views(r.content)
    _assert_never_seen(canary, value, [*views, str(r.headers.raw).encode()])
    if not path.startswith("/b64-"):
        assert any(ph.encode() in v for v in views), "the reflection lost its placeholder"
    if r.headers.get("content-type") == "application/json":
        assert _json(r.content) is not None, "scrubbing broke the JSON"
    trail.assert_contained(value, may_reach=(API,), seen=(r.content, str(r.headers)))
    trail.assert_contained(canary, may_reach=(API,))


def test_every_char_u_escaped_json_parses_to_the_placeholder(proxy, hostile, canary, secret):
    value = canary + SUFFIX
    secret("ECHO_TOKEN", value=value)
    run = proxy.register(("ECHO_TOKEN",))
    ph = run.placeholders["ECHO_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        for path in ("/json-u-all", "/json-u-partial", "/json-u-chunked", "/json-u-gzip"):
            r = c.get(
                f"https://{API}:{hostile.port}{path}", headers={"Authorization": f"Bearer {ph}"}
            )
            assert r.json() == {"token": ph}, path


@pytest.mark.parametrize("path", ["/json-u-all", "/json-u-chunked", "/pct-mixed"])
def test_non_bmp_value_escaped_as_surrogate_pairs_is_scrubbed(
    proxy, hostile, trail, canary, secret, path
):
    """A value outside the BMP (injected into the query, where it may be any text) comes
    back as UTF-16 surrogate pairs: \\ud83d\\ude00."""
    value = canary + "é😀/x"
    secret("Q_TOKEN", value=value, surfaces=("header", "query"))
    run = proxy.register(("Q_TOKEN",))
    ph = run.placeholders["Q_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(f"https://{API}:{hostile.port}{path}", params={"key": ph, "src": "query"})
    assert r.status_code == 200
    got = parse_qs(urlsplit(hostile.received[-1].path).query)
    assert got["key"] == [value], "not injected"
    views = decoded_views(r.content)
    _assert_never_seen(canary, value, views)
    assert any(ph.encode() in v for v in views)
    trail.assert_contained(canary, may_reach=(API,), seen=(r.content, str(r.headers)))
