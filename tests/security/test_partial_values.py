"""Parts of a value: an upstream that honours ``Range`` would return the value a slice per
request, and no slice is long enough to be scrubbed. And the exact Basic token the proxy made
(the base64 of ``user:value``) comes back as the base64 of ``user:placeholder``, whatever the
alignment of the value inside it.

A fragment of a value can't be scrubbed in general (see proxy/fragments.py): these attacks
check the mitigations, Range stripping and refusing a 206 to a request that carried a value.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import trustme

from tests.security.channels_server import ChannelServer
from tests.security.conftest import API, Trail
from tests.security.wire import Response, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged


@pytest.fixture(scope="module")
def echo(test_ca: trustme.CA) -> Iterator[ChannelServer]:
    srv = ChannelServer(test_ca, (API,)).start()
    yield srv
    srv.close()


@pytest.fixture
def where(proxy, echo) -> Trail:  # type: ignore[no-untyped-def]
    return Trail(proxy, (echo,))


def _get(run, proxy, port: int, path: str, headers: list[tuple[str, str]]) -> Response:  # type: ignore[no-untyped-def]
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        return conn.request("GET", path, [("Host", f"{API}:{port}"), *headers])


def test_range_requests_cannot_read_the_value_a_slice_at_a_time(
    proxy, echo, where, secret, canary, tag
):
    secret("RANGE_TOKEN")
    run = proxy.register(("RANGE_TOKEN",))
    ph = run.placeholders["RANGE_TOKEN"]
    slices = []
    for start in range(0, len(canary), 10):
        asked = [("Range", f"bytes={start}-{start + 9}"), ("If-Range", '"v1"')]
        resp = _get(run, proxy, echo.port, tagged("/range-echo", tag), [
            ("Authorization", f"Bearer {ph}"), *asked,
        ])  # fmt: skip
        assert resp.status == 200, resp.raw()
        slices.append(resp.body)
    got = received_with(echo, tag)
    assert [r.header("Authorization") for r in got] == [f"Bearer {canary}"] * len(slices)
    assert [(r.header("Range"), r.header("If-Range")) for r in got] == [(None, None)] * len(got)
    assert slices == [ph.encode()] * len(slices)
    where.assert_contained(canary, may_reach=(API,), seen=(*slices, b"".join(slices)))


def test_partial_response_to_a_request_carrying_a_value_is_refused(
    proxy, echo, where, secret, canary, tag
):
    """The upstream answers 206 with a slice although no Range was asked (it was stripped)."""
    secret("RANGE_TOKEN")
    run = proxy.register(("RANGE_TOKEN",))
    ph = run.placeholders["RANGE_TOKEN"]
    resp = _get(run, proxy, echo.port, tagged("/always-206", tag), [
        ("Authorization", f"Bearer {ph}"),
    ])  # fmt: skip
    assert only_received_with(echo, tag).header("Authorization") == f"Bearer {canary}"
    assert (resp.status, resp.refusal) == (502, "partial_response"), resp.raw()
    assert canary[:4].encode() not in resp.body
    where.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))


def test_range_request_without_a_value_is_passed_as_is(proxy, echo, where, secret, tag):
    """Ordinary traffic: a ranged download that carries no value keeps its Range and its 206."""
    secret("RANGE_TOKEN")
    run = proxy.register(("RANGE_TOKEN",))
    resp = _get(run, proxy, echo.port, tagged("/range-echo", tag), [
        ("Authorization", "Bearer public-token-123"), ("Range", "bytes=0-5"),
    ])  # fmt: skip
    assert only_received_with(echo, tag).header("Range") == "bytes=0-5"
    assert (resp.status, resp.body) == (206, b"public")


@pytest.mark.parametrize("user", ["u", "us", "abc"])
def test_echoed_basic_token_comes_back_as_the_placeholders_token(
    proxy, echo, where, secret, canary, tag, user
):
    """The value sits at each of the three alignments inside base64: the token's last
    characters mix bits of the value's last byte with the padding, so only the exact token maps
    back. (The value's last byte differs from the placeholder's in its low bits: those edge
    characters can't come out the same by chance.)"""
    secret("BASIC_TOKEN")
    run = proxy.register(("BASIC_TOKEN",))
    ph = run.placeholders["BASIC_TOKEN"]
    value = canary + next(c for c in "0123" if ord(c) % 4 != ord(ph[-1]) % 4)
    secret("BASIC_TOKEN", value=value)  # rotated: used from the next request on
    sent = "Basic " + base64.b64encode(f"{user}:{ph}".encode()).decode()
    resp = _get(run, proxy, echo.port, tagged("/echo-auth", tag), [("Authorization", sent)])
    real = "Basic " + base64.b64encode(f"{user}:{value}".encode()).decode()
    assert only_received_with(echo, tag).header("Authorization") == real
    assert resp.body.decode() == sent, "the echoed token is not the one the client sent"
    decoded = base64.b64decode(resp.body.split()[-1])
    where.assert_contained(value, may_reach=(API,), seen=(resp.raw(), decoded))
