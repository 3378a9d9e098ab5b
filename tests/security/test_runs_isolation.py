"""Placeholders are per run: one run can't use another's placeholder, and its traffic, audit
lines and scrubbed responses are its own. The run is the socket a connection came in on,
nothing the client says."""

from __future__ import annotations

import pytest

from tests.conftest import client_for
from tests.security.conftest import API
from tests.security.wire import connect, listening_ports, plain_conn
from tests.support.upstream import only_received_with, received_with, tagged


@pytest.fixture
def two_runs(proxy, secret):  # type: ignore[no-untyped-def]
    secret("ISO_TOKEN")
    return proxy.register(("ISO_TOKEN",)), proxy.register(("ISO_TOKEN",))


def _get(run, upstream, proxy, ph: str, tag: str):  # type: ignore[no-untyped-def]
    with client_for(run, proxy.ca_cert) as c:
        return c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )


def test_each_run_gets_its_own_placeholder(two_runs):
    a, b = two_runs
    assert a.placeholders["ISO_TOKEN"] != b.placeholders["ISO_TOKEN"]


def test_run_b_sending_run_a_placeholder_gets_nothing_injected(
    proxy, upstream, trail, canary, two_runs, tag
):
    a, b = two_runs
    ph_a = a.placeholders["ISO_TOKEN"]
    r = _get(b, upstream, proxy, ph_a, tag)
    assert r.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {ph_a}"
    trail.assert_contained(canary, seen=(r.text, str(r.headers)))
    assert trail.requests(b)[-1]["secrets_injected"] == []
    assert trail.leaks(b)[-1]["leaked_placeholders"] == ["<other_run>"]
    assert trail.requests(a) == [], "run B's request was attributed to run A"


def test_run_without_the_secret_cannot_use_another_runs_placeholder(
    proxy, upstream, trail, canary, secret, tag
):
    secret("ISO_TOKEN")
    owner = proxy.register(("ISO_TOKEN",))
    thief = proxy.register((), allow=[API])
    ph = owner.placeholders["ISO_TOKEN"]
    r = _get(thief, upstream, proxy, ph, tag)
    assert r.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {ph}"
    trail.assert_contained(canary, seen=(r.text,))


def test_unregistered_runs_placeholder_is_dead(proxy, upstream, trail, canary, two_runs, tag):
    a, b = two_runs
    ph_a = a.placeholders["ISO_TOKEN"]
    proxy.unregister(a)
    r = _get(b, upstream, proxy, ph_a, tag)
    assert r.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {ph_a}"
    trail.assert_contained(canary, seen=(r.text,))


def test_responses_are_scrubbed_to_the_receiving_runs_own_placeholder(
    proxy, upstream, trail, canary, two_runs, tag
):
    a, b = two_runs
    r_a = _get(a, upstream, proxy, a.placeholders["ISO_TOKEN"], tag)
    r_b = _get(b, upstream, proxy, b.placeholders["ISO_TOKEN"], tag)
    assert r_a.json()["headers"]["Authorization"] == f"Bearer {a.placeholders['ISO_TOKEN']}"
    assert r_b.json()["headers"]["Authorization"] == f"Bearer {b.placeholders['ISO_TOKEN']}"
    assert a.placeholders["ISO_TOKEN"] not in r_b.text
    assert b.placeholders["ISO_TOKEN"] not in r_a.text
    trail.assert_contained(canary, may_reach=(API,), seen=(r_a.text, r_b.text))
    assert len(trail.requests(a)) == 1 and len(trail.requests(b)) == 1


def test_client_claims_cannot_change_the_run(proxy, upstream, trail, canary, two_runs, tag):
    """Headers naming the other run (as an identity) change nothing: B stays B."""
    a, b = two_runs
    with client_for(b, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={
                "Authorization": f"Bearer {a.placeholders['ISO_TOKEN']}",
                "Proxy-Authorization": f"Basic {a.run_id}",
                "X-Coatcheck-Run": a.run_id,
                "Forwarded": f'for="run:{a.run_id}"',
            },
        )
    got = only_received_with(upstream, tag)
    assert got.header("Authorization") == f"Bearer {a.placeholders['ISO_TOKEN']}"
    assert trail.requests(a) == [] and len(trail.requests(b)) == 1
    trail.assert_contained(canary, seen=(r.text,))


def test_unknown_client_on_the_tcp_listener_is_refused(
    proxy, upstream, plain, trail, canary, two_runs, tag
):
    """mitmproxy's own loopback listener belongs to no run: a client that finds it (without a
    run socket) is refused everything, with reason unknown_client."""
    a, _ = two_runs
    ports = [port for pid in proxy.pids() for port in listening_ports(pid)]  # each worker's
    assert ports, "the proxy service listens on no TCP port?"
    for port in ports:
        url = f"http://127.0.0.1:{port}"
        conn, resp = connect(url, f"{API}:{upstream.port}")
        conn.close()
        assert resp.status == 403 and resp.refusal == "unknown_client", port
        with plain_conn(url) as c:
            r = c.request(
                "GET",
                tagged(f"http://{API}:{upstream.port}/echo", tag),
                [
                    ("Host", f"{API}:{upstream.port}"),
                    ("Authorization", f"Bearer {a.placeholders['ISO_TOKEN']}"),
                ],
            )
        assert r.status == 403 and r.refusal == "unknown_client"
    assert received_with(upstream, tag) == [] and received_with(plain, tag) == []
    trail.assert_contained(canary)
