"""Domain patterns are exact names or a leading ``*.``, compared after normalization (lower
case, trailing dot trimmed, IDNA). A look-alike name never gets a secret; the same name
spelled differently is the same host, consistently."""

from __future__ import annotations

import pytest

from tests.security.conftest import APEX, API, IDN, IDN_UNICODE, OTHER, SUFFIX
from tests.security.wire import connect, open_tunnel
from tests.support.upstream import only_received_with, received_with, tagged


def _get(proxy, run, target: str, *, sni: str | None, host: str | None = None, path="/ok"):  # type: ignore[no-untyped-def]
    """GET through a tunnel to ``target`` (host:port) with the run's placeholder."""
    ph = next(iter(run.placeholders.values()))
    with open_tunnel(run.proxy_url, target, proxy.ca_cert, sni=sni) as conn:
        return conn.request(
            "GET", path, [("Host", host or target), ("Authorization", f"Bearer {ph}")]
        )


@pytest.mark.parametrize(
    "pattern",
    [pytest.param(API, id="exact"), pytest.param("*.coatcheck.test", id="wildcard")],
)
def test_suffix_confusion_host_is_not_allowlisted(proxy, hostile, trail, canary, secret, pattern):
    """``api.coatcheck.test.evil.test`` ends with the secret's name but is another host."""
    secret("SFX_TOKEN", domains=[pattern])
    run = proxy.register(("SFX_TOKEN",))
    conn, resp = connect(run.proxy_url, f"{SUFFIX}:{hostile.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "not_allowlisted"
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_suffix_confusion_host_allowed_without_secret_gets_only_the_placeholder(
    proxy, hostile, trail, canary, secret, tag
):
    secret("SFX_TOKEN", domains=[API])
    run = proxy.register(("SFX_TOKEN",), allow=[SUFFIX])
    ph = run.placeholders["SFX_TOKEN"]
    resp = _get(proxy, run, f"{SUFFIX}:{hostile.port}", sni=SUFFIX, path=tagged("/ok", tag))
    assert resp.status == 200
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {ph}"
    trail.assert_contained(canary, seen=(resp.raw(),))
    leaks = trail.leaks(run)
    assert (
        leaks and leaks[-1]["host"] == SUFFIX and leaks[-1]["leaked_placeholders"] == ["SFX_TOKEN"]
    )


@pytest.mark.parametrize(
    ("connect_host", "sni", "host_header"),
    [
        pytest.param("API.COATCHECK.TEST", API, "API.COATCHECK.TEST", id="upper-case"),
        pytest.param("api.coatcheck.test.", API, "api.coatcheck.test.", id="trailing-dot"),
        pytest.param(
            "Api.CoatCheck.Test.",
            "API.COATCHECK.TEST",
            "aPI.coatcheck.TEST",
            id="mixed-case-dot-and-sni",
        ),
        pytest.param(API, API, "API.COATCHECK.TEST.", id="host-header-spelled-differently"),
    ],
)
def test_trailing_dot_and_case_are_the_same_host_consistently(
    proxy, hostile, trail, canary, secret, connect_host, sni, host_header, tag
):
    """Decision: a different spelling of the secret's own host IS that host, so the value is
    injected, to that host only, and scrubbed on the way back; the audit names the canonical
    host."""
    secret("CASE_TOKEN", domains=[API])
    run = proxy.register(("CASE_TOKEN",))
    port = hostile.port
    target, host = f"{connect_host}:{port}", f"{host_header}:{port}"
    resp = _get(proxy, run, target, sni=sni, host=host, path=tagged("/b64", tag))
    assert resp.status == 200
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(
        canary, may_reach=(API, API.upper(), "api.coatcheck.test."), seen=(resp.raw(),)
    )
    line = trail.requests(run)[-1]
    assert line["secrets_injected"] == ["CASE_TOKEN"]
    assert line["host"].lower().rstrip(".") == API


@pytest.mark.parametrize(
    ("connect_host", "host_header"),
    [
        pytest.param("API.COATCHECK.TEST.", f"{OTHER}.", id="dotted-connect-other-host"),
        pytest.param(f"{OTHER}.", API, id="dotted-other-connect-api-host"),
        pytest.param("API.COATCHECK.TEST", "API.COATCHECK.TEST.EVIL.TEST", id="upper-suffix"),
    ],
)
def test_spelling_tricks_do_not_bypass_the_mismatch_check(
    proxy, hostile, trail, canary, secret, connect_host, host_header, tag
):
    secret("CASE_TOKEN", domains=[API])
    run = proxy.register(("CASE_TOKEN",), allow=[OTHER])
    port = hostile.port
    sni = connect_host.lower().rstrip(".")
    resp = _get(proxy, run, f"{connect_host}:{port}", sni=sni, host=f"{host_header}:{port}",
                path=tagged("/ok", tag))  # fmt: skip
    assert resp.status == 403 and resp.refusal == "host_mismatch"
    assert received_with(hostile, tag) == []
    trail.assert_contained(canary, seen=(resp.raw(),))


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("api.coatcheck.test..", id="double-trailing-dot"),
        pytest.param("\u0430pi.coatcheck.test", id="cyrillic-homograph"),
        pytest.param("api\uff0ecoatcheck\uff0etest", id="fullwidth-dots"),
        pytest.param(IDN_UNICODE, id="raw-unicode"),
        pytest.param("xn--pi-7kc.coatcheck.test", id="homograph-punycode"),
        pytest.param("api.coatcheck.test%2eevil.test", id="percent-dot"),
    ],
)
def test_unicode_and_lookalike_connect_targets_never_get_the_secret(
    proxy, hostile, trail, canary, secret, target
):
    """Look-alikes of the allowlisted names are refused (by the proxy or as bad requests);
    raw Unicode in a CONNECT line is refused rather than guessed at."""
    secret("IDN_TOKEN", domains=[API, IDN_UNICODE])
    run = proxy.register(("IDN_TOKEN",), resolve={IDN: "127.0.0.1"})
    conn, resp = connect(run.proxy_url, f"{target}:{hostile.port}")
    conn.close()
    assert resp.status in (400, 403), resp
    trail.assert_contained(canary, seen=(resp.raw(),))


def test_punycode_name_of_a_unicode_pattern_gets_the_secret_and_only_there(
    proxy, hostile, trail, canary, secret, tag
):
    """``bücher.coatcheck.test`` in the vault is ``xn--bcher-kva.coatcheck.test`` on the
    wire: the A-label gets the value; the Host header may spell it either way."""
    secret("IDN_TOKEN", domains=[IDN_UNICODE])
    run = proxy.register(("IDN_TOKEN",), resolve={IDN: "127.0.0.1"})
    port = hostile.port
    resp = _get(proxy, run, f"{IDN}:{port}", sni=IDN, path=tagged("/pct", tag))
    assert resp.status == 200
    assert only_received_with(hostile, tag).header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(IDN,), seen=(resp.raw(),))
    assert trail.requests(run)[-1]["secrets_injected"] == ["IDN_TOKEN"]


def test_wildcard_does_not_cover_the_apex(proxy, hostile, trail, canary, secret, tag):
    secret("WILD_TOKEN", domains=["*.coatcheck.test"])
    run = proxy.register(("WILD_TOKEN",), allow=[APEX], resolve={APEX: "127.0.0.1"})
    ph = run.placeholders["WILD_TOKEN"]
    apex = _get(proxy, run, f"{APEX}:{hostile.port}", sni=APEX, path=tagged("/ok", f"apex-{tag}"))
    assert apex.status == 200
    assert only_received_with(hostile, f"apex-{tag}").header("Authorization") == f"Bearer {ph}"
    sub = _get(proxy, run, f"{API}:{hostile.port}", sni=API, path=tagged("/ok", f"sub-{tag}"))
    assert sub.status == 200
    assert only_received_with(hostile, f"sub-{tag}").header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(API,), seen=(apex.raw(), sub.raw()))


def test_port_pinned_pattern_refuses_other_ports(proxy, upstream, hostile, trail, canary, secret):
    secret("PORT_TOKEN", domains=[f"{API}:{hostile.port}"])
    run = proxy.register(("PORT_TOKEN",))
    conn, resp = connect(run.proxy_url, f"{API}:{upstream.port}")
    conn.close()
    assert resp.status == 403 and resp.refusal == "not_allowlisted"
    ok = _get(proxy, run, f"{API}:{hostile.port}", sni=API)
    assert ok.status == 200
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(), ok.raw()))
    assert trail.hosts_that_got(canary) == {API}
