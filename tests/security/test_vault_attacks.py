"""Values with CR, LF or NUL are refused at ``vault set`` (header injection), and the vault is
the live source of truth: a rotated value is used on the next request, a removed or narrowed
secret is injected nowhere it no longer applies, without a restart."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.errors import InvalidValue
from tests.conftest import client_for
from tests.security.conftest import API, OTHER
from tests.security.wire import open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged
from vault.secret import SecretValue
from vault.store import Vault

BAD_VALUES = [
    pytest.param("{c}\r\nX-Injected: 1", id="crlf-header-injection"),
    pytest.param("{c}\nX-Injected: 1", id="lf"),
    pytest.param("{c}\rX-Injected: 1", id="cr"),
    pytest.param("{c}\x00tail", id="nul"),
    pytest.param(
        "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: evil.test\r\n\r\n{c}", id="request-smuggling"
    ),
]


@pytest.mark.parametrize("template", BAD_VALUES)
def test_crlf_and_nul_values_are_refused_by_the_vault_api(session_vault, canary, template):
    value = template.format(c=canary)
    with pytest.raises(InvalidValue) as info:
        session_vault.set("CRLF_TOKEN", SecretValue(value), [API])
    assert canary not in info.value.message and canary not in repr(info.value)
    assert "CRLF_TOKEN" not in {m.name for m in session_vault.list()}
    assert (
        canary.encode() not in session_vault.path.read_bytes()
        if session_vault.path.exists()
        else True
    )


@pytest.mark.parametrize("template", BAD_VALUES)
def test_crlf_and_nul_values_are_refused_by_the_cli(tmp_path, canary, template):
    value = template.format(c=canary)
    out = subprocess.run(
        [sys.executable, "-m", "runner.cli", "vault", "set", "CRLF_TOKEN", "--domains", API],
        input=value.encode() + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert canary.encode() not in out.stdout + out.stderr
    assert b"CR, LF or NUL" in out.stderr
    home = Vault.open(tmp_path / "home")
    assert home.list() == []


def test_rotation_is_used_on_the_next_request_of_a_live_connection(
    proxy, upstream, trail, canary, secret, tag
):
    secret("ROT_TOKEN")
    run = proxy.register(("ROT_TOKEN",))
    ph = run.placeholders["ROT_TOKEN"]
    rotated = canary + "-rotated"
    port = upstream.port
    head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")]
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        first = conn.request("GET", tagged("/echo", f"first-{tag}"), head)
        got = only_received_with(upstream, f"first-{tag}")
        assert got.header("Authorization") == f"Bearer {canary}"
        secret("ROT_TOKEN", value=rotated)
        second = conn.request("GET", tagged("/echo", f"second-{tag}"), head)
    got = only_received_with(upstream, f"second-{tag}")
    assert got.header("Authorization") == f"Bearer {rotated}"
    assert trail.requests_with(canary) == 2  # the old one once, the new one (its prefix) once
    assert trail.requests_with(rotated) == 1
    trail.assert_contained(rotated, may_reach=(API,), seen=(first.raw(), second.raw()))


def test_removed_secret_is_injected_nowhere(
    proxy, upstream, trail, canary, secret, session_vault, tag
):
    secret("RM_TOKEN")
    run = proxy.register(("RM_TOKEN",))
    ph = run.placeholders["RM_TOKEN"]
    url = f"https://{API}:{upstream.port}/echo"
    with client_for(run, proxy.ca_cert) as c:
        c.get(tagged(url, f"first-{tag}"), headers={"Authorization": f"Bearer {ph}"})
        got = only_received_with(upstream, f"first-{tag}")
        assert got.header("Authorization") == f"Bearer {canary}"
        session_vault.remove("RM_TOKEN")
        before = trail.requests_with(canary)
        r = c.get(tagged(url, f"second-{tag}"), headers={"Authorization": f"Bearer {ph}"})
    if r.status_code == 200:
        got = only_received_with(upstream, f"second-{tag}")
        assert got.header("Authorization") == f"Bearer {ph}"
    else:
        assert received_with(upstream, f"second-{tag}") == []
    assert trail.requests_with(canary) == before
    trail.assert_contained(canary, may_reach=(API,), seen=(r.content,))


def test_narrowed_domains_apply_to_a_running_sandbox(proxy, upstream, trail, canary, secret, tag):
    secret("NARROW_TOKEN", domains=[API, OTHER])
    run = proxy.register(("NARROW_TOKEN",))
    ph = run.placeholders["NARROW_TOKEN"]
    with client_for(run, proxy.ca_cert) as c:
        url = tagged(f"https://{API}:{upstream.port}/echo", tag)
        c.get(url, headers={"Authorization": f"Bearer {ph}"})
        assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
        secret("NARROW_TOKEN", domains=[OTHER])
        before = trail.requests_with(canary)
        try:
            r = c.get(
                f"https://{API}:{upstream.port}/echo", headers={"Authorization": f"Bearer {ph}"}
            )
            seen = r.content
        except Exception as exc:  # noqa: BLE001 - a refused CONNECT is fine
            seen = str(exc).encode()
    assert trail.requests_with(canary) == before, "injected for a domain removed in the vault"
    trail.assert_contained(canary, may_reach=(API,), seen=(seen,))
