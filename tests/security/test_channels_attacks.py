"""Every place where an upstream's bytes reach the sandbox, each attacked by an upstream that
reflects the real value there: the status line's reason, a header's name and value, a body
(buffered, streamed, read until close), trailers (HTTP/1 and HTTP/2), informational responses
(HTTP/1 and HTTP/2), a switch to another protocol (mitmproxy would then relay raw TCP that no
hook sees), a transfer coding other than ``chunked`` (the scrubber would see gzip), WebSocket
frames (data, ping, close reason), mitmproxy's error page, an HTTP/2 GOAWAY, and the CONNECT
response itself. Each case asserts that the value reached the upstream (it was injected) and
that nothing the client received, decoded as a client would, holds it.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest
import trustme

from tests.security.channels_server import ChannelServer, decoded_views, read_all
from tests.security.conftest import API, Trail
from tests.security.wire import build, connect, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged

WS_HEADERS = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", base64.b64encode(b"coatcheck-attack").decode()),
    ("Sec-WebSocket-Version", "13"),
]


@pytest.fixture(scope="module")
def channels(test_ca: trustme.CA) -> Iterator[ChannelServer]:
    srv = ChannelServer(test_ca, (API,)).start()
    yield srv
    srv.close()


@pytest.fixture
def run(proxy, secret):  # type: ignore[no-untyped-def]
    secret("CH_TOKEN")
    return proxy.register(("CH_TOKEN",))


@pytest.fixture
def where(proxy, channels) -> Trail:  # type: ignore[no-untyped-def]
    return Trail(proxy, (channels,))


def _h1(run, proxy, port: int, path: str, headers: list | None = None) -> list[bytes]:  # type: ignore[no-untyped-def,type-arg]
    """Everything the client gets for ``GET path`` on HTTP/1.1, the CONNECT answer first, and
    what it can decode from it. After a 101 the client sends its placeholder down the pipe."""
    ph = run.placeholders["CH_TOKEN"]
    conn, connected = connect(run.proxy_url, f"{API}:{port}")
    assert connected.status == 200
    tls = ssl.create_default_context(cafile=str(proxy.ca_cert)).wrap_socket(
        conn.sock, server_hostname=API
    )
    auth = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")]
    tls.sendall(build("GET", path, [*auth, *(headers or [("Connection", "close")])]))
    tls.settimeout(10)
    try:
        first = tls.recv(65536)
        if first.startswith(b"HTTP/1.1 101"):
            tls.sendall(b"pipe " + ph.encode())
        raw = first + read_all(tls)
    except OSError:
        raw = b""
    finally:
        tls.close()
    return [connected.raw(), *decoded_views(raw)]


def _h2(run, proxy, port: int, path: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Every header (informational, final, trailers), data frame and GOAWAY payload the client
    gets on HTTP/2 for ``GET path``, and the raw bytes."""
    ph = run.placeholders["CH_TOKEN"]
    conn, connected = connect(run.proxy_url, f"{API}:{port}")
    ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(conn.sock, server_hostname=API)
    assert tls.selected_alpn_protocol() == "h2"
    h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    h2c.initiate_connection()
    head = [(":method", "GET"), (":scheme", "https"), (":authority", f"{API}:{port}")]
    head += [(":path", path), ("authorization", f"Bearer {ph}")]
    h2c.send_headers(1, head, end_stream=True)
    tls.sendall(h2c.data_to_send())
    tls.settimeout(10)
    seen, raw, done = [connected.raw()], b"", False
    try:
        while not done and (data := tls.recv(65536)):
            raw += data
            for ev in h2c.receive_data(data):
                for part in ("headers", "data", "additional_data"):
                    got = getattr(ev, part, None)
                    seen.append(got if isinstance(got, bytes) else repr(got).encode())
                done = done or isinstance(
                    ev,
                    h2.events.StreamEnded | h2.events.StreamReset | h2.events.ConnectionTerminated,
                )
            tls.sendall(h2c.data_to_send())
    except OSError:
        pass
    finally:
        tls.close()
    return [*seen, raw]


def _status(seen: list[bytes]) -> bytes:
    return seen[1].split(b"\r\n", 1)[0]


def _injected(channels: ChannelServer, tag: str, canary: str) -> None:
    got = only_received_with(channels, tag)
    assert got.header("Authorization") == f"Bearer {canary}", "the value was not injected"


H1_REFLECTED = [
    pytest.param("/status-reason", b"HTTP/1.1 200", id="status-line-reason"),
    pytest.param("/header-value", b"HTTP/1.1 200", id="header-value"),
    pytest.param("/header-name", b"HTTP/1.1 200", id="header-name"),
    pytest.param("/body-buffered", b"HTTP/1.1 200", id="body-buffered"),
    pytest.param("/body-streamed", b"HTTP/1.1 200", id="body-streamed-one-byte-chunks"),
    pytest.param("/body-until-close", b"HTTP/1.1 200", id="body-read-until-close"),
    pytest.param("/informational", b"HTTP/1.1 103", id="http1-103-early-hints-headers"),
    pytest.param("/error-page", b"", id="mitmproxy-error-page-quoting-a-bad-status-line"),
    pytest.param("/trailers", b"HTTP/1.1 200", id="http1-trailers-dropped"),
    pytest.param("/upgrade-raw", b"HTTP/1.1 502", id="101-to-another-protocol-unasked"),
    pytest.param("/upgrade-websocket-unasked", b"HTTP/1.1 502", id="101-websocket-unasked"),
    pytest.param("/te-gzip-chunked", b"HTTP/1.1 502", id="transfer-encoding-gzip-chunked"),
    pytest.param("/te-gzip", b"HTTP/1.1 502", id="transfer-encoding-gzip-until-close"),
]


@pytest.mark.parametrize(("path", "status"), H1_REFLECTED)
def test_http1_channel_reflecting_the_value_reaches_the_client_scrubbed(
    proxy, channels, where, run, canary, tag, path, status
):
    seen = _h1(run, proxy, channels.port, tagged(path, tag))
    _injected(channels, tag, canary)
    where.assert_contained(canary, may_reach=(API,), seen=tuple(seen))
    assert _status(seen).startswith(status), seen[1][:200]
    if status == b"HTTP/1.1 502":
        reason = "upgrade_refused" if "upgrade" in path else "transfer_encoding"
        assert f"x-coatcheck-reason: {reason}".encode() in seen[1].lower()
        assert [e["reason"] for e in where.requests(run)] == [reason]
    if path == "/trailers":  # a complete response: the body, its end, no trailer fields
        assert seen[1].endswith(b"2\r\nok\r\n0\r\n\r\n"), seen[1]
    assert not channels.after_upgrade or run.placeholders["CH_TOKEN"].encode() not in b"".join(
        channels.after_upgrade
    ), "the client's bytes went through a raw pipe"


def test_websocket_data_ping_and_close_reason_are_scrubbed(
    proxy, channels, where, run, canary, tag
):
    ph = run.placeholders["CH_TOKEN"]
    seen = _h1(run, proxy, channels.port, tagged("/ws-frames", tag), WS_HEADERS)
    _injected(channels, tag, canary)
    where.assert_contained(canary, may_reach=(API,), seen=tuple(seen))
    assert _status(seen) == b"HTTP/1.1 101 Switching Protocols"
    assert seen[1].count(ph.encode()) == 3, "data, ping and close reason: each the placeholder"


def test_client_asking_for_another_protocol_is_refused_before_it_leaves(
    proxy, channels, where, run, canary, tag
):
    asked = [("Upgrade", "foo/1"), ("Connection", "Upgrade, close")]
    seen = _h1(run, proxy, channels.port, tagged("/upgrade-raw", tag), asked)
    assert _status(seen).startswith(b"HTTP/1.1 403")
    assert b"x-coatcheck-reason: upgrade_refused" in seen[1].lower()
    assert received_with(channels, tag) == [], "the request left"
    where.assert_contained(canary, seen=tuple(seen))
    assert [e["secrets_injected"] for e in where.requests(run)] == [[]]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/h2-header", id="http2-header"),
        pytest.param("/h2-body", id="http2-body"),
        pytest.param("/h2-trailers", id="http2-trailers"),
        pytest.param("/h2-informational", id="http2-103-early-hints"),
        pytest.param("/h2-goaway", id="http2-goaway-debug-data"),
    ],
)
def test_http2_channel_reflecting_the_value_reaches_the_client_scrubbed(
    proxy, channels, where, run, canary, tag, path
):
    seen = _h2(run, proxy, channels.port, tagged(path, tag))
    _injected(channels, tag, canary)
    where.assert_contained(canary, may_reach=(API,), seen=tuple(seen))
    if path == "/h2-trailers":  # scrubbed, not dropped: gRPC needs its trailers
        ph = run.placeholders["CH_TOKEN"].encode()
        assert any(ph in s and b"x-trailer" in s for s in seen), seen


def test_connect_response_carries_nothing_from_the_upstream(proxy, channels, run, canary):
    """The proxy answers CONNECT itself, before it dials: no upstream byte can be in it."""
    conn, connected = connect(run.proxy_url, f"{API}:{channels.port}")
    conn.close()
    assert connected.status == 200 and canary.encode() not in connected.raw()


def test_client_http1_trailers_are_dropped_and_the_request_completes(
    proxy, channels, run, canary, tag
):
    """mitmproxy used to raise on HTTP/1 trailers (the connection died); now they are dropped
    where they are read, in both directions: the request goes on without them."""
    ph, port = run.placeholders["CH_TOKEN"], channels.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Transfer-Encoding", "chunked")]
        conn.send(build("POST", tagged("/ok", tag), [*head, ("Authorization", f"Bearer {ph}")]))
        conn.send(b"2\r\nhi\r\n0\r\nX-Trailer: " + ph.encode() + b"\r\n\r\n")
        resp = conn.read()
    assert (resp.status, resp.body) == (200, b"ok")
    _injected(channels, tag, canary)
    assert only_received_with(channels, tag).body == b"hi", "the trailer went upstream"
