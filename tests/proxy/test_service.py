"""The real proxy service between a client and a local TLS upstream (trustme)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from sandbox import relay as sandbox_relay
from tests.conftest import client_for
from tests.support.upstream import only_received_with, received_with, tagged


@pytest.fixture
def token(vault_secret):  # type: ignore[no-untyped-def]
    value = "sk-live-" + "Q9x" * 8
    vault_secret("SVC_TOKEN", value, ["api.coatcheck.test"])
    return value


def test_header_placeholder_is_swapped_and_echo_is_scrubbed(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {token}"
    assert token not in r.text
    assert r.json()["headers"]["Authorization"] == f"Bearer {ph}"
    [line] = proxy.audit_for(run)
    assert line["secrets_injected"] == ["SVC_TOKEN"]
    assert line["decision"] == "allow" and line["status"] == 200
    assert line["host"] == "api.coatcheck.test" and line["path"] == "/echo"
    assert token not in proxy.audit_log.read_text()


def test_basic_auth_is_decoded_swapped_and_reencoded(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    url = tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag)
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(url, auth=("x-token", ph))
    got = only_received_with(upstream, tag).header("Authorization") or ""
    assert base64.b64decode(got.split()[1]).decode() == f"x-token:{token}"
    assert token not in r.text


def test_not_allowlisted_host_is_refused_with_reason(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",))
    with client_for(run, proxy.ca_cert) as c, pytest.raises(httpx.ProxyError) as info:
        c.get(tagged(f"https://other.coatcheck.test:{upstream.port}/echo", tag))
    assert "403" in str(info.value)
    assert received_with(upstream, tag) == []
    [line] = proxy.audit_for(run)
    assert line["decision"] == "deny" and line["reason"] == "not_allowlisted"


def test_allow_flag_admits_a_host_without_injection(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",), allow=["other.coatcheck.test"])
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://other.coatcheck.test:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200
    got = only_received_with(upstream, tag)
    assert got.header("Host") == f"other.coatcheck.test:{upstream.port}"
    assert got.header("Authorization") == f"Bearer {ph}"
    assert token not in got.raw().decode()


def test_sse_streams_unbuffered_and_split_values_are_scrubbed(proxy, upstream, token, tag):
    """The upstream sends one event and then holds back the next until this test releases it:
    the first event can only reach the client before that if the proxy streams. (The request
    carries the value: the echo of it is scrubbed, not an incident.)"""
    run = proxy.register(("SVC_TOKEN",))
    hold = upstream.hold()
    url = f"https://api.coatcheck.test:{upstream.port}/held-sse?hold={hold.id}&value={token}"
    auth = {"Authorization": f"Bearer {run.placeholders['SVC_TOKEN']}"}
    with client_for(run, proxy.ca_cert) as c, c.stream("GET", tagged(url, tag), headers=auth) as r:
        chunks = r.iter_raw()
        try:
            first = next(chunks)
        except httpx.ReadTimeout:
            pytest.fail("no event reached the client while the upstream held the stream open")
        finally:
            hold.release()
        rest = b"".join(chunks)
    assert first.startswith(b"data: "), first
    assert not hold.gave_up, "the upstream gave up waiting: the test never got the first event"
    body = first + rest
    assert token.encode() not in body
    assert body.count(run.placeholders["SVC_TOKEN"].encode()) == 2, body


def test_gzip_response_is_scrubbed(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://api.coatcheck.test:{upstream.port}/gzip-echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {token}"
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
def test_curl_gets_substitution_over_http1_and_http2(proxy, upstream, token, version, tag):
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
            tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, negotiated = out.rsplit("\n", 1)
    assert negotiated == ("2" if version == "--http2" else "1.1")
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {token}"
    assert token not in out and ph in body


def test_rotation_is_used_on_the_next_request_and_removal_stops_injection(
    proxy, upstream, vault_secret, session_vault, tag
):
    vault_secret("ROT_TOKEN", "first-value-aaaaaaaa", ["api.coatcheck.test"])
    run = proxy.register(("ROT_TOKEN",))
    ph = run.placeholders["ROT_TOKEN"]

    def sent(step: str) -> str | None:
        url = f"https://api.coatcheck.test:{upstream.port}/echo?step={step}"
        c.get(tagged(url, tag), headers={"Authorization": ph})
        return only_received_with(upstream, f"step={step}&t={tag}").header("Authorization")

    with client_for(run, proxy.ca_cert) as c:
        assert sent("first") == "first-value-aaaaaaaa"
        vault_secret("ROT_TOKEN", "second-value-bbbbbbb", ["api.coatcheck.test"])
        assert sent("rotated") == "second-value-bbbbbbb"
        session_vault.remove("ROT_TOKEN")
        assert sent("removed") == ph


def test_unregistered_run_socket_is_gone(proxy, upstream, token, monkeypatch, tag):
    monkeypatch.setattr(sandbox_relay, "CONNECT_WAIT_S", 0.3)
    run = proxy.register(("SVC_TOKEN",))
    proxy.unregister(run)
    assert not Path(run.socket).exists()
    with client_for(run, proxy.ca_cert) as c, pytest.raises(httpx.ProxyError) as info:
        c.get(tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag))
    assert "502" in str(info.value)  # the relay's own answer: proxy_unreachable
    assert received_with(upstream, tag) == []


def test_audit_names_the_real_destination_not_the_host_header(proxy, upstream, token, tag):
    run = proxy.register(("SVC_TOKEN",))
    ph = run.placeholders["SVC_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}", "Host": "evil.test"},
        )
    assert r.status_code == 403 and r.headers["x-coatcheck-reason"] == "host_mismatch"
    assert received_with(upstream, tag) == []
    [line] = proxy.audit_for(run)
    assert (line["host"], line["port"]) == ("api.coatcheck.test", upstream.port)
    assert line["reason"] == "host_mismatch" and line["secrets_injected"] == []
