"""The real proxy service between a client and a local TLS upstream (trustme)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sandbox import init as sandbox_init
from tests.conftest import client_for


@pytest.fixture
def token(vault_secret):  # type: ignore[no-untyped-def]
    value = "sk-live-" + "Q9x" * 8
    vault_secret("SVC_TOKEN", value, ["api.coatcheck.test"])
    return value


def test_header_placeholder_is_swapped_and_echo_is_scrubbed(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://api.coatcheck.test:{upstream.port}/echo",
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200
    assert upstream.received[-1].header("Authorization") == f"Bearer {token}"
    assert token not in r.text
    assert r.json()["headers"]["Authorization"] == f"Bearer {ph}"
    line = proxy.audit_for(run)[-1]
    assert line["secrets_injected"] == ["SVC_TOKEN"]
    assert line["decision"] == "allow" and line["status"] == 200
    assert line["host"] == "api.coatcheck.test" and line["path"] == "/echo"
    assert token not in proxy.audit_log.read_text()


def test_basic_auth_is_decoded_swapped_and_reencoded(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(f"https://api.coatcheck.test:{upstream.port}/echo", auth=("x-token", ph))
    got = upstream.received[-1].header("Authorization") or ""
    assert base64.b64decode(got.split()[1]).decode() == f"x-token:{token}"
    assert token not in r.text


def test_not_allowlisted_host_is_refused_with_reason(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    before = len(upstream.received)
    with client_for(run, proxy.ca_cert) as c, pytest.raises(httpx.ProxyError) as info:
        c.get(f"https://other.coatcheck.test:{upstream.port}/echo")
    assert "403" in str(info.value)
    assert len(upstream.received) == before
    line = proxy.audit_for(run)[-1]
    assert line["decision"] == "deny" and line["reason"] == "not_allowlisted"


def test_allow_flag_admits_a_host_without_injection(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",), allow=["other.coatcheck.test"])
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://other.coatcheck.test:{upstream.port}/echo",
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200
    assert upstream.received[-1].header("Authorization") == f"Bearer {ph}"
    assert token not in upstream.received[-1].raw().decode()


def test_sse_streams_unbuffered_and_split_values_are_scrubbed(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    url = f"https://api.coatcheck.test:{upstream.port}/slow-sse?n=2&value={token}"
    with client_for(run, proxy.ca_cert) as c:
        start = time.monotonic()
        with c.stream("GET", url) as r:
            chunks = r.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - start
            rest = b"".join(chunks)
    body = first + rest
    assert first_at < 1.5, "the first event must arrive before the upstream's 2 s pause"
    assert token.encode() not in body
    assert body.count(run.placeholders["SVC_TOKEN"].encode()) == 2


def test_gzip_response_is_scrubbed(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://api.coatcheck.test:{upstream.port}/gzip-echo",
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert upstream.received[-1].header("Authorization") == f"Bearer {token}"
    assert token not in r.text
    assert json.loads(r.text)["headers"]["Authorization"] == f"Bearer {ph}"


def test_response_headers_are_scrubbed(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://api.coatcheck.test:{upstream.port}/echo-header",
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.headers["x-echo"] == f"Bearer {ph}"
    assert token not in str(r.headers)


@pytest.mark.parametrize("version", ["--http1.1", "--http2"])
def test_curl_gets_substitution_over_http1_and_http2(proxy, upstream, token, version):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    out = subprocess.run(
        [
            "curl",
            "-sS",
            version,
            "--cacert",
            str(proxy.ca_cert),
            "-x",
            run.proxy_url,
            "-H",
            f"Authorization: Bearer {ph}",
            "-w",
            "\n%{http_version}",
            f"https://api.coatcheck.test:{upstream.port}/echo",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, negotiated = out.rsplit("\n", 1)
    assert negotiated == ("2" if version == "--http2" else "1.1")
    assert upstream.received[-1].header("Authorization") == f"Bearer {token}"
    assert token not in out and ph in body


def test_rotation_is_used_on_the_next_request_and_removal_stops_injection(
    proxy, upstream, vault_secret, session_vault
):
    vault_secret("ROT_TOKEN", "first-value-aaaaaaaa", ["api.coatcheck.test"])
    run = proxy.register(("ROT_TOKEN",))
    ph = run.placeholders["ROT_TOKEN"]
    url = f"https://api.coatcheck.test:{upstream.port}/echo"
    with client_for(run, proxy.ca_cert) as c:
        c.get(url, headers={"Authorization": ph})
        assert upstream.received[-1].header("Authorization") == "first-value-aaaaaaaa"
        vault_secret("ROT_TOKEN", "second-value-bbbbbbb", ["api.coatcheck.test"])
        c.get(url, headers={"Authorization": ph})
        assert upstream.received[-1].header("Authorization") == "second-value-bbbbbbb"
        session_vault.remove("ROT_TOKEN")
        c.get(url, headers={"Authorization": ph})
        assert upstream.received[-1].header("Authorization") == ph


def test_unregistered_run_socket_is_gone(proxy, upstream, token, monkeypatch):
    monkeypatch.setattr(sandbox_init, "CONNECT_WAIT_S", 0.3)
    run = proxy.register(("SVC_TOKEN",))
    proxy.unregister(run)
    assert not Path(run.socket).exists()
    with client_for(run, proxy.ca_cert) as c, pytest.raises(httpx.ProxyError):
        c.get(f"https://api.coatcheck.test:{upstream.port}/echo")


def test_audit_names_the_real_destination_not_the_host_header(proxy, upstream, token):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            f"https://api.coatcheck.test:{upstream.port}/echo",
            headers={"Authorization": f"Bearer {ph}", "Host": "evil.test"},
        )
    assert r.status_code == 403 and r.headers["x-coatcheck-reason"] == "host_mismatch"
    line = proxy.audit_for(run)[-1]
    assert (line["host"], line["port"]) == ("api.coatcheck.test", upstream.port)
    assert line["reason"] == "host_mismatch" and line["secrets_injected"] == []
