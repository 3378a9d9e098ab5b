"""Fail closed: a response that can't be decoded, a body too large to inspect, a policy that
can't be loaded or a vault that can't be read mean a clear refusal, never a forwarded
half-checked message. And ordinary large traffic still works."""

from __future__ import annotations

import os
import ssl

import pytest

from core.errors import RegistrationRefused
from proxy import control
from tests.conftest import client_for
from tests.security.conftest import API
from tests.security.wire import Conn, build, connect, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged

MIB = 1024 * 1024


@pytest.fixture
def run(proxy, secret):  # type: ignore[no-untyped-def]
    secret("FC_TOKEN")
    return proxy.register(("FC_TOKEN",))


def _bearer(run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {run.placeholders['FC_TOKEN']}"}


def _raw_get(run, proxy, port: int, path: str, wait: float) -> tuple[bytes, bool]:  # type: ignore[no-untyped-def]
    """Everything the client receives for ``GET path``, and whether the proxy ended the
    connection (EOF or reset) within ``wait`` seconds instead of leaving the client hanging."""
    got = b""
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        conn.send(build("GET", path, [("Host", f"{API}:{port}"), *_bearer(run).items()]))
        conn.sock.settimeout(wait)
        try:
            while chunk := conn.sock.recv(65536):
                got += chunk
            return got, True
        except TimeoutError:
            return got, False
        except OSError:
            return got, True


def test_undecodable_response_encoding_is_refused_with_502(proxy, hostile, trail, canary, run, tag):
    """``Content-Encoding: snappy`` can't be scrubbed: a 502 with the reason, and none of the
    upstream's bytes."""
    got, _ = _raw_get(run, proxy, hostile.port, tagged("/snappy", tag), 4)
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(API,), seen=(got,))
    assert got.startswith(b"HTTP/1.1 502")
    assert b"x-coatcheck-reason: undecodable_response" in got.lower()
    assert b"sNaPpY" not in got, "the undecodable upstream body was forwarded"
    assert [e["reason"] for e in trail.requests(run)] == ["undecodable_response"]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/corrupt-gzip", id="corrupt-gzip"),
        pytest.param("/not-gzip", id="plain-text-labelled-gzip"),
    ],
)
def test_corrupt_compressed_response_never_forwards_the_value(
    proxy, hostile, trail, canary, run, path, tag
):
    """The body can't be decoded, so it can't be scrubbed: the client gets an error or a cut
    body (the connection is ended promptly), never the bytes, which hold the value in the
    clear."""
    got, ended = _raw_get(run, proxy, hostile.port, tagged(path, tag), 4)
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    assert got, "no answer at all"
    trail.assert_contained(canary, may_reach=(API,), seen=(got,))
    assert not got.endswith(b"0\r\n\r\n"), "a cut body was presented as complete"
    assert ended, "the proxy left the client hanging on a body it could not decode"
    if got.startswith(b"HTTP/1.1 502"):  # refused before any of the body went out
        assert b"x-coatcheck-reason: undecodable_response" in got.lower(), got
    assert [e["reason"] for e in trail.requests(run)] == ["undecodable_response"]


def test_request_body_too_large_to_inspect_is_refused_413(
    proxy, upstream, trail, canary, secret, tag
):
    secret("BIG_TOKEN", surfaces=("header", "body"))
    run = proxy.register(("BIG_TOKEN",))
    ph = run.placeholders["BIG_TOKEN"]
    body = ph.encode() + b"x" * (16 * MIB + 1)
    with client_for(run, proxy.ca_cert) as c:
        r = c.post(
            tagged(f"https://{API}:{upstream.port}/ok", tag),
            content=body,
            headers={"Content-Type": "text/plain"},
        )
    assert r.status_code == 413 and r.headers.get("x-coatcheck-reason") == "too_large"
    assert received_with(upstream, tag) == []
    assert [e["reason"] for e in trail.requests(run)] == ["too_large"]
    trail.assert_contained(canary, seen=(r.content,))


def test_chunked_request_body_too_large_to_inspect_is_refused_413(
    proxy, hostile, trail, canary, secret, tag
):
    """No Content-Length to refuse early: the proxy must still stop at its inspection limit."""
    secret("BIG_TOKEN", surfaces=("header", "body"))
    run = proxy.register(("BIG_TOKEN",))
    ph = run.placeholders["BIG_TOKEN"]
    port = hostile.port
    piece = b"x" * MIB
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        conn.send(
            build(
                "POST",
                tagged("/ok", tag),
                [
                    ("Host", f"{API}:{port}"),
                    ("Content-Type", "text/plain"),
                    ("Transfer-Encoding", "chunked"),
                ],
            )
        )
        conn.send(b"%x\r\n%s\r\n" % (len(ph), ph.encode()))
        try:
            for _ in range(17):
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the proxy may answer and close before the end
        resp = conn.read()
    assert resp.status == 413 and resp.refusal == "too_large"
    assert received_with(hostile, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_large_upload_and_download_to_an_allowed_host_still_work(
    proxy, upstream, trail, canary, run, tag
):
    """Header-only secret: the request body streams past uninspected and the response streams
    through the scrubber, whatever their size."""
    size = 17 * MIB
    url = tagged(f"https://{API}:{upstream.port}/ok", tag)
    with client_for(run, proxy.ca_cert) as c:
        up = c.post(url, content=b"u" * size, headers=_bearer(run))
        assert up.status_code == 200
        assert only_received_with(upstream, tag).body == b"u" * size
        down = c.get(f"https://{API}:{upstream.port}/big?size={size}", headers=_bearer(run))
    assert down.status_code == 200 and len(down.content) == size
    trail.assert_contained(canary, may_reach=(API,))


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        pytest.param(
            {"allow": ["*"]},
            'incorrect domain pattern "*": it would allow every host',
            id="allow-everything",
        ),
        pytest.param(
            {"allow": ["*.com"]},
            'incorrect domain pattern "*.com": a wildcard needs at least two labels',
            id="tld-wildcard",
        ),
        pytest.param(
            {"allow": ["api.*.test"]},
            "incorrect domain pattern \"api.*.test\": '*' is only allowed as a whole leading label",
            id="mid-label-glob",
        ),
        pytest.param(
            {"allow": ["https://api.coatcheck.test/"]},
            'a pattern is a host name, not a URL; use "api.coatcheck.test"',
            id="url-as-pattern",
        ),
        pytest.param(
            {"allow_cidr": ["0.0.0.0/0"]},
            "--allow-cidr '0.0.0.0/0': it would allow every address",
            id="allow-cidr-everything",
        ),
        pytest.param(
            {"on_leak": "sometimes"},
            "--on-leak 'sometimes': use one of log, block",
            id="unknown-on-leak",
        ),
        pytest.param(
            {"resolve": ["api.coatcheck.test:not-an-ip"]},
            "'not-an-ip' is not an IP address; use HOST:ADDR",
            id="bad-resolve",
        ),
        pytest.param(
            {"secrets": {"FC_TOKEN": "not-a-placeholder"}},
            "placeholder for FC_TOKEN is not a coatcheck placeholder",
            id="forged-placeholder",
        ),
        pytest.param(
            {"secrets": {"NO_SUCH_SECRET": "ccph_" + "A" * 26}},
            "no secret named NO_SUCH_SECRET in the vault; add it with "
            "`coatcheck vault set NO_SUCH_SECRET --domains DOMAIN`",
            id="unknown-secret",
        ),
    ],
)
def test_policy_that_cannot_be_loaded_is_refused_at_registration(proxy, run, bad, why):
    """Each bad policy is refused for its own reason, which says what to fix."""
    run_id = "r-bad" + os.urandom(4).hex()
    with pytest.raises(RegistrationRefused) as info:
        control.call(proxy.paths.control, {"op": "register", "run_id": run_id, **bad})
    assert why in info.value.message, info.value.message
    assert not proxy.paths.run_socket(run_id).exists()


def test_unreadable_vault_refuses_instead_of_forwarding(
    proxy, upstream, trail, canary, run, session_vault, tag
):
    """The vault file turns unreadable while a run is live: requests are refused (no value,
    no half-checked forward), and they work again once it is restored."""
    path = session_vault.path
    good = path.read_bytes()
    target = f"{API}:{upstream.port}"
    bearer = list(_bearer(run).items())
    try:
        tmp = path.with_suffix(".corrupt")
        tmp.write_bytes(b"{ this is not a vault")
        os.replace(tmp, path)
        conn, refused = connect(run.proxy_url, target)
        with conn:
            if refused.status != 200:  # the CONNECT itself was refused: read its body too
                refused.body = conn.file.read(int(refused.header("Content-Length") or 0))
            else:  # the tunnel is up: the refusal is the request's
                ctx = ssl.create_default_context(cafile=str(proxy.ca_cert))
                tls = Conn(ctx.wrap_socket(conn.sock, server_hostname=API))
                refused = tls.request("GET", tagged("/echo", tag), [("Host", target), *bearer])
    finally:
        tmp = path.with_suffix(".restore")
        tmp.write_bytes(good)
        os.replace(tmp, path)
    assert (refused.status, refused.refusal) == (500, "internal_error"), refused.raw()
    assert b"VaultCorrupt" in refused.raw(), refused.raw()
    assert received_with(upstream, tag) == [], "forwarded while the vault could not be read"
    with client_for(run, proxy.ca_cert) as c:
        ok = c.get(tagged(f"https://{target}/echo", tag), headers=_bearer(run))
    assert ok.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(API,), seen=(refused.raw(), ok.content))
