"""Decide on the real destination: the CONNECT target. Host, :authority, an absolute-form
target and the TLS SNI are client claims; a mismatch is refused, never trusted, and nothing is
injected for the claimed host."""

from __future__ import annotations

import json
import ssl
import subprocess

import h2.config
import h2.connection
import h2.events
import pytest

from tests.security.conftest import API, EVIL, OTHER, SUFFIX
from tests.security.wire import Closed, build, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged


@pytest.fixture
def run(proxy, secret):  # type: ignore[no-untyped-def]
    secret("BIND_TOKEN")
    return proxy.register(("BIND_TOKEN",), allow=[OTHER, EVIL, SUFFIX])


def _bearer(run) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [("Authorization", f"Bearer {run.placeholders['BIND_TOKEN']}")]


@pytest.mark.parametrize(
    "host_header",
    [
        pytest.param(f"{OTHER}:{{port}}", id="other-allowlisted-host"),
        pytest.param(f"{EVIL}:{{port}}", id="evil-host"),
        pytest.param(f"{SUFFIX}:{{port}}", id="suffix-host"),
        pytest.param(f"{API}:{{other_port}}", id="same-host-other-port"),
        pytest.param(f"{API}@{EVIL}", id="userinfo-trick"),
        pytest.param("127.0.0.1:{port}", id="ip-literal"),
    ],
)
def test_host_header_differing_from_connect_is_refused(
    proxy, upstream, trail, canary, run, host_header, tag
):
    host = host_header.format(port=upstream.port, other_port=upstream.port + 1)
    with open_tunnel(run.proxy_url, f"{API}:{upstream.port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request("GET", tagged("/echo", tag), [("Host", host), *_bearer(run)])
    assert resp.status == 403 and resp.refusal == "host_mismatch"
    assert received_with(upstream, tag) == [], "a mismatching request reached the upstream"
    trail.assert_contained(canary, seen=(resp.raw(),))
    assert [e["reason"] for e in trail.requests(run)] == ["host_mismatch"]


def test_keep_alive_reuse_after_a_legit_request_checks_every_request(
    proxy, upstream, trail, canary, run, tag
):
    """First a legitimate request (injected), then on the same connection one claiming another
    host: the established upstream connection must not carry the value for it."""
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        ok = conn.request(
            "GET", tagged("/echo", f"ok-{tag}"), [("Host", f"{API}:{port}"), *_bearer(run)]
        )
        assert ok.status == 200
        got = only_received_with(upstream, f"ok-{tag}")
        assert got.header("Authorization") == f"Bearer {canary}"
        bad = conn.request(
            "GET", tagged("/echo", f"bad-{tag}"), [("Host", f"{OTHER}:{port}"), *_bearer(run)]
        )
    assert bad.status == 403 and bad.refusal == "host_mismatch"
    assert received_with(upstream, f"bad-{tag}") == []
    trail.assert_contained(canary, may_reach=(API,), seen=(ok.raw(), bad.raw()))


def test_keep_alive_reuse_after_a_refused_mismatch_injects_nothing_to_the_wrong_host(
    proxy, upstream, trail, canary, run, tag
):
    """A refused mismatching request, then another on the same connection: either the proxy
    closed the connection, or it checks again; the wrong host never gets the value."""
    port = upstream.port
    path = tagged("/echo", tag)
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        first = conn.request("GET", path, [("Host", f"{OTHER}:{port}"), *_bearer(run)])
        assert first.status == 403 and first.refusal == "host_mismatch"
        seen = [first.raw()]
        try:
            second = conn.request("GET", path, [("Host", f"{EVIL}:{port}"), *_bearer(run)])
        except (Closed, OSError):  # the proxy closed the connection after the refusal: fine
            second = None
        if second is not None:
            seen.append(second.raw())
            assert second.status == 403 and second.refusal == "host_mismatch"
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=tuple(seen))


def test_pipelined_mismatch_behind_a_legit_request_is_refused(
    proxy, upstream, trail, canary, run, tag
):
    port = upstream.port
    path = tagged("/echo", tag)
    legit = build("GET", path, [("Host", f"{API}:{port}"), *_bearer(run)])
    smuggled = build("GET", path, [("Host", f"{EVIL}:{port}"), *_bearer(run)])
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        conn.send(legit + smuggled)
        first = conn.read()
        second = conn.read()
    assert first.status == 200
    assert second.status == 403 and second.refusal == "host_mismatch"
    assert [r.header("Host") for r in received_with(upstream, tag)] == [f"{API}:{port}"]
    trail.assert_contained(canary, may_reach=(API,), seen=(first.raw(), second.raw()))


@pytest.mark.parametrize(
    ("target", "host_header"),
    [
        pytest.param(f"https://{OTHER}:{{port}}/echo", f"{OTHER}:{{port}}", id="other-host"),
        pytest.param(
            f"https://{OTHER}:{{port}}/echo", f"{API}:{{port}}", id="other-target-api-host"
        ),
        pytest.param(f"https://{EVIL}:{{port}}/echo", f"{EVIL}:{{port}}", id="evil-host"),
    ],
)
def test_absolute_form_target_inside_tunnel_differing_from_connect_is_refused(
    proxy, upstream, trail, canary, run, target, host_header, tag
):
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request(
            "GET",
            tagged(target.format(port=port), tag),
            [("Host", host_header.format(port=port)), *_bearer(run)],
        )
    assert resp.status == 403 and resp.refusal == "host_mismatch", (resp.status, resp.refusal)
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_http_scheme_target_inside_tls_tunnel_stays_tls_to_the_connect_target(
    proxy, upstream, trail, canary, run, tag
):
    """``GET http://api...`` inside the TLS tunnel: the value may only travel over the tunnel's
    TLS to the CONNECT target (the upstream speaks TLS only), and comes back scrubbed."""
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request(
            "GET",
            tagged(f"http://{API}:{port}/echo", tag),
            [("Host", f"{API}:{port}"), *_bearer(run)],
        )
    if resp.status == 200:
        assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    else:
        assert resp.status == 403
        assert received_with(upstream, tag) == []
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))


@pytest.mark.parametrize(
    "hosts",
    [
        pytest.param((f"{API}:{{port}}", f"{EVIL}:{{port}}"), id="api-then-evil"),
        pytest.param((f"{EVIL}:{{port}}", f"{API}:{{port}}"), id="evil-then-api"),
        pytest.param((f"{API}:{{port}}", f"{API}:{{port}}"), id="same-twice"),
    ],
)
def test_duplicate_host_headers_are_refused(proxy, upstream, trail, canary, run, hosts, tag):
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        headers = [("Host", h.format(port=port)) for h in hosts]
        resp = conn.request("GET", tagged("/echo", tag), [*headers, *_bearer(run)])
    assert 400 <= resp.status < 500
    if resp.status == 403:
        assert resp.refusal == "duplicate_host"
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_http2_authority_mismatch_via_curl_is_refused(proxy, upstream, trail, canary, run, tag):
    ph = run.placeholders["BIND_TOKEN"]
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
            f"Host: {OTHER}:{upstream.port}",
            "-H",
            f"Authorization: Bearer {ph}",
            "-D",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
            tagged(f"https://{API}:{upstream.port}/echo", tag),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    status, version = out.stdout.rsplit("\n", 1)[1].split()
    assert version == "2", "the attack must go over HTTP/2"
    assert status == "403" and "x-coatcheck-reason: host_mismatch" in out.stdout.lower()
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(out.stdout, out.stderr))


def _h2_requests(run, proxy, port: int, streams: list[list[tuple[str, str]]]) -> list[dict]:  # type: ignore[no-untyped-def]
    """Send ``streams`` one after the other on one HTTP/2 connection through the tunnel; a
    stream the proxy never answered (it reset the connection) has ``done`` False."""
    conn = open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API, alpn=["h2"])
    sock = conn.sock
    results: list[dict] = []
    try:
        assert isinstance(sock, ssl.SSLSocket) and sock.selected_alpn_protocol() == "h2"
        config = h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False
        )
        h2c = h2.connection.H2Connection(config)
        h2c.initiate_connection()
        sock.sendall(h2c.data_to_send())
        sock.settimeout(10)
        closed = False
        for headers in streams:
            result: dict = {"headers": {}, "body": b"", "done": False}
            results.append(result)
            if closed:
                continue
            sid = h2c.get_next_available_stream_id()
            h2c.send_headers(sid, headers, end_stream=True)
            sock.sendall(h2c.data_to_send())
            while not result["done"] and not closed:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                for ev in h2c.receive_data(data):
                    if getattr(ev, "stream_id", None) != sid:
                        closed = closed or isinstance(ev, h2.events.ConnectionTerminated)
                        continue
                    if isinstance(ev, h2.events.ResponseReceived):
                        result["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
                    elif isinstance(ev, h2.events.DataReceived):
                        result["body"] += ev.data
                        h2c.acknowledge_received_data(ev.flow_controlled_length, sid)
                    elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                        result["done"] = True
                sock.sendall(h2c.data_to_send())
    except (TimeoutError, ConnectionError, ssl.SSLError):
        pass
    finally:
        conn.close()
    return results


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("authority", id="authority-names-evil"),
        pytest.param("host", id="host-header-differs-from-authority"),
    ],
)
def test_http2_streams_each_bound_to_the_connect_target(
    proxy, upstream, trail, canary, run, bad, tag
):
    """On one HTTP/2 connection: a legit stream, then one whose :authority (or extra ``host``
    header) names another host. Only the first gets the value; the second is refused (or the
    proxy drops the connection)."""
    port = upstream.port
    ph = run.placeholders["BIND_TOKEN"]

    def req(authority: str, extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[str, str]]:
        return [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", tagged("/echo", tag)),
            *extra,
            ("authorization", f"Bearer {ph}"),
        ]

    attack = (
        req(f"{EVIL}:{port}")
        if bad == "authority"
        else req(f"{API}:{port}", ((("host", f"{OTHER}:{port}"),)))
    )
    legit, refused = _h2_requests(run, proxy, port, [req(f"{API}:{port}"), attack])
    assert legit["headers"].get(":status") == "200"
    assert json.loads(legit["body"])["headers"]["authorization"] == f"Bearer {ph}"
    if refused["done"]:
        assert refused["headers"].get(":status") in ("400", "403"), refused
    if bad == "authority":
        assert refused["headers"].get("x-coatcheck-reason") == "host_mismatch"
    got = received_with(upstream, tag)
    assert [r.header("Authorization") for r in got] == [f"Bearer {canary}"]
    trail.assert_contained(
        canary, may_reach=(API,), seen=(json.dumps([legit, refused], default=repr),)
    )


@pytest.mark.parametrize(
    ("sni", "host_header"),
    [
        pytest.param(OTHER, API, id="sni-other-host-api"),
        pytest.param(OTHER, OTHER, id="sni-other-host-other"),
        pytest.param(SUFFIX, API, id="sni-suffix-host-api"),
    ],
)
def test_tls_sni_differing_from_connect_is_refused(
    proxy, upstream, trail, canary, run, sni, host_header, tag
):
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=sni) as conn:
        resp = conn.request(
            "GET", tagged("/echo", tag), [("Host", f"{host_header}:{port}"), *_bearer(run)]
        )
    assert resp.status == 403 and resp.refusal == "sni_mismatch"
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_openssl_s_client_with_foreign_sni_gets_nothing_injected(
    proxy, upstream, trail, canary, run, tag
):
    port = upstream.port
    ph = run.placeholders["BIND_TOKEN"]
    request = (
        f"GET /echo?t={tag} HTTP/1.1\r\nHost: {API}:{port}\r\nAuthorization: Bearer {ph}\r\n"
        "Connection: close\r\n\r\n"
    )
    out = subprocess.run(
        [
            "openssl",
            "s_client",
            "-quiet",
            "-proxy",
            run.proxy_url.removeprefix("http://"),
            "-connect",
            f"{API}:{port}",
            "-servername",
            EVIL,
            "-CAfile",
            str(proxy.ca_cert),
        ],
        input=request,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "x-coatcheck-reason: sni_mismatch" in out.stdout.lower(), out.stdout + out.stderr
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(out.stdout, out.stderr))


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"GET / HTTP/1.1 trailing-junk", id="extra-token"),
        pytest.param(b"GET\x00/ HTTP/1.1", id="nul-in-method"),
        pytest.param(b"GET /\r/x HTTP/1.1", id="bare-cr-in-target"),
        pytest.param(b"G ET / HTTP/1.1", id="split-method"),
        pytest.param(b"GET / HTTP/9.9", id="bad-version"),
    ],
)
def test_malformed_request_line_in_a_tunnel_is_refused(run, proxy, upstream, line, tag):
    with open_tunnel(run.proxy_url, f"{API}:{upstream.port}", proxy.ca_cert, sni=API) as conn:
        conn.send(line + b"\r\nHost: " + f"{API}:{upstream.port}".encode() + b"\r\n"
                  + b"X-Test-Tag: " + tag.encode() + b"\r\n"
                  + b"Authorization: Bearer " + run.placeholders["BIND_TOKEN"].encode()
                  + b"\r\n\r\n")  # fmt: skip
        try:
            resp = conn.read()
            assert 400 <= resp.status < 500, resp.raw()
        except Closed:
            pass  # closing the connection is a refusal too
    assert received_with(upstream, tag) == [], "a malformed request reached the upstream"
