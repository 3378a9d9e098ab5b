"""Inject only over TLS to the secret's own domains, only in the surfaces, methods and paths
the secret allows, with correct escaping and length; strip proxy-only headers."""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.conftest import client_for
from tests.security.conftest import API, PLAIN
from tests.security.wire import build, connect, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged

# A value with every character that needs escaping somewhere: JSON (" \ /), URLs (& = + % ?
# space), HTML-ish (< &).
SPECIAL = '/"q\\z&=+%?< x'


def _url(upstream, tag: str, path: str = "/ok") -> str:  # type: ignore[no-untyped-def]
    return tagged(f"https://{API}:{upstream.port}{path}", tag)


# -- TLS only -------------------------------------------------------------------------------


@pytest.fixture
def plain_run(proxy, secret):  # type: ignore[no-untyped-def]
    secret("PLAIN_TOKEN", domains=[PLAIN])
    return proxy.register(("PLAIN_TOKEN",), resolve={PLAIN: "127.0.0.1"})


def test_plain_http_absolute_form_gets_no_value(proxy, plain, trail, canary, plain_run, tag):
    ph = plain_run.placeholders["PLAIN_TOKEN"]
    with client_for(plain_run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"http://{PLAIN}:{plain.port}/x?q={ph}", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200, r.text
    got = only_received_with(plain, tag)
    assert got.header("Authorization") == f"Bearer {ph}"
    assert got.path.startswith(f"/x?q={ph}&"), got.path
    assert trail.requests(plain_run)[-1]["secrets_injected"] == []
    trail.assert_contained(canary, seen=(r.text, str(r.headers)))


def test_plain_http_inside_a_connect_tunnel_gets_no_value(
    proxy, plain, trail, canary, plain_run, tag
):
    ph = plain_run.placeholders["PLAIN_TOKEN"]
    conn, resp = connect(plain_run.proxy_url, f"{PLAIN}:{plain.port}")
    with conn:
        assert resp.status == 200
        r = conn.request(
            "GET",
            tagged("/x", tag),
            [("Host", f"{PLAIN}:{plain.port}"), ("Authorization", f"Bearer {ph}")],
        )
    assert only_received_with(plain, tag).header("Authorization") == f"Bearer {ph}"
    trail.assert_contained(canary, seen=(r.raw(),))


# -- surfaces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "kw"),
    [
        pytest.param("query", {"params": {"key": "{ph}"}}, id="query"),
        pytest.param("json-body", {"json": {"key": "{ph}"}}, id="json-body"),
        pytest.param("form-body", {"data": {"key": "{ph}"}}, id="form-body"),
        pytest.param("path", {}, id="path"),
        pytest.param("cookie", {"headers": {"Cookie": "s={ph}"}}, id="cookie-header-allowed"),
    ],
)
def test_default_surfaces_are_headers_only(proxy, upstream, trail, canary, secret, where, kw, tag):
    secret("HDR_TOKEN")
    run = proxy.register(("HDR_TOKEN",))
    ph = run.placeholders["HDR_TOKEN"]
    kw = json.loads(json.dumps(kw).replace("{ph}", ph))
    path = f"/ok/{ph}" if where == "path" else "/ok"
    if "params" in kw:  # httpx replaces a URL's query with params: the tag goes there too
        kw["params"]["t"] = tag
    with client_for(run, proxy.ca_cert) as c:
        r = c.post(_url(upstream, tag, path), **kw)
    assert r.status_code == 200
    got = only_received_with(upstream, tag)
    if where == "cookie":  # a header: the default surface, so injected
        assert got.header("Cookie") == f"s={canary}"
        trail.assert_contained(canary, may_reach=(API,), seen=(r.text, str(r.headers)))
    else:
        assert ph.encode() in got.raw() and canary.encode() not in got.raw()
        trail.assert_contained(canary, seen=(r.text, str(r.headers)))


def test_query_surface_injects_percent_encoded(proxy, upstream, trail, canary, secret, tag):
    value = canary + SPECIAL
    secret("Q_TOKEN", value=value, surfaces=("header", "query"))
    run = proxy.register(("Q_TOKEN",))
    ph = run.placeholders["Q_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(f"https://{API}:{upstream.port}/ok", params={"key": ph, "other": "1", "t": tag})
    assert r.status_code == 200
    query = urlsplit(only_received_with(upstream, tag).path).query
    assert parse_qs(query) == {"key": [value], "other": ["1"], "t": [tag]}
    assert value not in query and unquote(query.split("&")[0].split("=")[1]) == value
    trail.assert_contained(canary, may_reach=(API,), seen=(r.text, str(r.headers)))


@pytest.mark.parametrize(
    ("content_type", "body", "parse"),
    [
        pytest.param(
            "application/json",
            '{{"key": "{ph}", "n": 1}}',
            lambda b: json.loads(b)["key"],
            id="json",
        ),
        pytest.param(
            "application/vnd.api+json; charset=utf-8",
            '{{"key": "{ph}"}}',
            lambda b: json.loads(b)["key"],
            id="json-suffix",
        ),
        pytest.param(
            "application/x-www-form-urlencoded",
            "a=1&key={ph}&b=2",
            lambda b: parse_qs(b.decode())["key"][0],
            id="form",
        ),
        pytest.param(
            "text/plain",
            "token: {ph}\n",
            lambda b: b.decode().removeprefix("token: ").rstrip("\n"),
            id="raw-text",
        ),
    ],
)
def test_body_surface_injects_escaped_with_correct_length(
    proxy, upstream, trail, canary, secret, content_type, body, parse, tag
):
    value = canary + SPECIAL
    secret("B_TOKEN", value=value, surfaces=("header", "body"))
    run = proxy.register(("B_TOKEN",))
    ph = run.placeholders["B_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.post(
            _url(upstream, tag),
            content=body.format(ph=ph).encode(),
            headers={"Content-Type": content_type},
        )
    assert r.status_code == 200
    got = only_received_with(upstream, tag)
    assert int(got.header("Content-Length") or -1) == len(got.body)
    assert parse(got.body) == value
    trail.assert_contained(canary, may_reach=(API,), seen=(r.text, str(r.headers)))
    assert trail.requests(run)[-1]["secrets_injected"] == ["B_TOKEN"]


def test_body_surface_in_a_chunked_request_body(proxy, hostile, trail, canary, secret, tag):
    secret("B_TOKEN", surfaces=("header", "body"))
    run = proxy.register(("B_TOKEN",))
    ph = run.placeholders["B_TOKEN"]
    port = hostile.port
    body = json.dumps({"key": ph}).encode()
    chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (5, body[:5], len(body) - 5, body[5:])
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        conn.send(
            build(
                "POST",
                tagged("/ok", tag),
                [
                    ("Host", f"{API}:{port}"),
                    ("Content-Type", "application/json"),
                    ("Transfer-Encoding", "chunked"),
                ],
            )
            + chunks
        )
        resp = conn.read()
    assert resp.status == 200
    got = only_received_with(hostile, tag)
    assert json.loads(got.body) == {"key": canary}
    if got.header("Content-Length") is not None:
        assert int(got.header("Content-Length") or -1) == len(got.body)
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))


@pytest.mark.parametrize(
    ("headers", "make_body", "reason"),
    [
        pytest.param(
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            lambda ph: gzip.compress(json.dumps({"k": ph}).encode()),
            "compressed_body",
            id="gzip",
        ),
        pytest.param(
            {"Content-Type": "multipart/form-data; boundary=XyZ"},
            lambda ph: (
                f'--XyZ\r\nContent-Disposition: form-data; name="k"\r\n\r\n{ph}\r\n--XyZ--\r\n'
            ).encode(),
            "multipart_body",
            id="multipart",
        ),
        pytest.param(
            {"Content-Type": "application/json", "Content-Encoding": "snappy"},
            lambda ph: b"\xff\x06\x00\x00sNaPpY" + ph.encode(),
            "undecodable_body",
            id="unknown-encoding",
        ),
    ],
)
def test_compressed_or_multipart_request_body_with_placeholder_is_refused(
    proxy, upstream, trail, canary, secret, headers, make_body, reason, tag
):
    secret("B_TOKEN", surfaces=("header", "body"))
    run = proxy.register(("B_TOKEN",))
    body = make_body(run.placeholders["B_TOKEN"])
    with client_for(run, proxy.ca_cert) as c:
        r = c.post(_url(upstream, tag), content=body, headers=headers)
    assert 400 <= r.status_code < 500
    assert r.headers.get("x-coatcheck-reason") == reason
    assert received_with(upstream, tag) == []
    trail.assert_contained(canary, seen=(r.text,))


# -- methods and paths ---------------------------------------------------------------------


def test_read_only_secret_is_not_injected_into_writes(proxy, upstream, trail, canary, secret, tag):
    secret("RO_TOKEN", methods=("GET",))
    run = proxy.register(("RO_TOKEN",))
    ph = run.placeholders["RO_TOKEN"]
    bearer = {"Authorization": f"Bearer {ph}"}
    with client_for(run, proxy.ca_cert) as c:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            r = c.request(method, _url(upstream, f"{method}-{tag}"), headers=bearer)
            assert r.status_code == 200
            got = only_received_with(upstream, f"{method}-{tag}")
            assert got.header("Authorization") == f"Bearer {ph}", method
        trail.assert_contained(canary)
        r = c.get(_url(upstream, f"GET-{tag}"), headers=bearer)
    assert only_received_with(upstream, f"GET-{tag}").header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(API,), seen=(r.text,))
    assert trail.hosts_that_got(canary) == {API} and trail.requests_with(canary) == 1


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/v2/admin", id="other-prefix"),
        pytest.param("/v1", id="prefix-without-slash"),
        pytest.param("/v1/../admin", id="dot-dot-segment"),
        pytest.param("/v1/%2e%2e/admin", id="encoded-dot-dot"),
        pytest.param("//v1/x", id="double-slash"),
        # Round two: what servers route differently from how the rule reads it.
        pytest.param("/v1/..;/admin", id="tomcat-path-parameter"),
        pytest.param("/v1/%2e%2e;/admin", id="encoded-dots-with-parameter"),
        pytest.param("/v1/%252e%252e/admin", id="double-encoded-dots"),
        pytest.param("/v1/%c0%ae%c0%ae/admin", id="overlong-utf8-dots"),
        pytest.param("/v1/%u002e%u002e/admin", id="iis-u-dots"),
        pytest.param("/v1/..%00/admin", id="dots-then-nul"),
        pytest.param("/v1/..%09/admin", id="dots-then-tab"),
        pytest.param("/v1/..%2fadmin", id="encoded-slash"),
        pytest.param("/v1/..\\admin", id="backslash"),
        pytest.param("/v1/.../admin", id="trailing-dot-trimming"),
        pytest.param("/v1/;/../admin", id="empty-parameter-segment"),
        pytest.param("/v1/%2E%2E/admin", id="upper-case-encoded-dots"),
    ],
)
def test_path_restricted_secret_is_not_injected_outside_its_paths(
    proxy, upstream, trail, canary, secret, target, tag
):
    """Paths are what the upstream will serve: ``/v1/../admin`` is /admin to any server that
    normalizes the path, so it must not get a ``/v1/*`` secret."""
    secret("PATH_TOKEN", paths=("/v1/*",))
    run = proxy.register(("PATH_TOKEN",))
    ph = run.placeholders["PATH_TOKEN"]
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")]
        ok = conn.request("GET", tagged("/v1/ok", f"ok-{tag}"), head)
        got = only_received_with(upstream, f"ok-{tag}")
        assert got.header("Authorization") == f"Bearer {canary}"
        before = trail.requests_with(canary)
        resp = conn.request("GET", tagged(target, f"target-{tag}"), head)
    if resp.status == 200:
        got = only_received_with(upstream, f"target-{tag}")
        assert got.header("Authorization") == f"Bearer {ph}", target
    else:
        assert resp.status in (400, 403)
    assert trail.requests_with(canary) == before
    trail.assert_contained(canary, may_reach=(API,), seen=(ok.raw(), resp.raw()))


# -- proxy-only headers ---------------------------------------------------------------------


def test_proxy_only_headers_are_stripped(proxy, upstream, trail, canary, secret, tag):
    secret("PA_TOKEN")
    run = proxy.register(("PA_TOKEN",))
    ph = run.placeholders["PA_TOKEN"]
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        resp = conn.request(
            "GET",
            tagged("/echo", tag),
            [
                ("Host", f"{API}:{port}"),
                ("Proxy-Authorization", f"Bearer {ph}"),
                ("Proxy-Connection", "keep-alive"),
                ("proxy-authenticate", "Basic realm=x"),
                ("X-Keep", "1"),
            ],
        )
    assert resp.status == 200
    names = {k.lower() for k, _ in only_received_with(upstream, tag).headers}
    assert not names & {"proxy-authorization", "proxy-connection", "proxy-authenticate"}
    assert "x-keep" in names
    trail.assert_contained(canary, seen=(resp.raw(),))
