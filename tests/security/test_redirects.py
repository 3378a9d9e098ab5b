"""Never follow redirects in the proxy: a 302 goes back to the client as it is, and wherever
the client goes next is decided afresh (another host: refused or no value; plain http: no
value)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import client_for
from tests.security.conftest import API, EVIL, PLAIN
from tests.support.upstream import only_received_with, received_with, tagged


def _follow(run, proxy, first: str, ph: str) -> tuple[httpx.Response, httpx.Response | Exception]:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {ph}"}
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(first, headers=headers, follow_redirects=False)
        try:
            second: httpx.Response | Exception = c.get(r.headers["location"], headers=headers)
        except httpx.HTTPError as exc:
            second = exc
    return r, second


@pytest.mark.parametrize("allow_evil", [False, True], ids=["evil-not-allowed", "evil-allowed"])
def test_redirect_to_another_host_is_not_followed_and_the_follow_up_gets_nothing(
    proxy, upstream, trail, canary, secret, allow_evil, tag
):
    secret("REDIR_TOKEN")
    run = proxy.register(("REDIR_TOKEN",), allow=[EVIL] if allow_evil else [])
    ph = run.placeholders["REDIR_TOKEN"]
    port = upstream.port
    target = tagged(f"https://{EVIL}:{port}/echo", tag)  # the first hop carries it in ?to=
    r, second = _follow(run, proxy, f"https://{API}:{port}/redirect?to={target}", ph)
    assert r.status_code == 302 and r.headers["location"] == target
    got = received_with(upstream, tag)
    first_hop = got[0]
    assert first_hop.header("Host") == f"{API}:{port}"
    assert first_hop.header("Authorization") == f"Bearer {canary}"
    if allow_evil:
        assert isinstance(second, httpx.Response) and second.status_code == 200
        assert [x.header("Host") for x in got] == [f"{API}:{port}", f"{EVIL}:{port}"]
        assert got[1].header("Authorization") == f"Bearer {ph}"
        assert trail.leaks(run)[-1]["host"] == EVIL
        seen = (r.content, second.content)
    else:
        assert got == [first_hop], "the proxy followed the redirect"
        assert "403" in str(second) or getattr(second, "status_code", 0) == 403
        assert trail.requests(run)[-1]["reason"] == "not_allowlisted"
        seen = (r.content, str(second).encode())
    trail.assert_contained(canary, may_reach=(API,), seen=seen)


def test_redirect_to_plain_http_of_an_allowed_host_gets_no_value(
    proxy, upstream, plain, trail, canary, secret, tag
):
    secret("REDIR_TOKEN", domains=[API, PLAIN])
    run = proxy.register(("REDIR_TOKEN",), resolve={PLAIN: "127.0.0.1"})
    ph = run.placeholders["REDIR_TOKEN"]
    target = tagged(f"http://{PLAIN}:{plain.port}/landing", tag)
    r, second = _follow(run, proxy, f"https://{API}:{upstream.port}/redirect?to={target}", ph)
    assert r.status_code == 302
    assert isinstance(second, httpx.Response) and second.status_code == 200
    assert only_received_with(plain, tag).header("Authorization") == f"Bearer {ph}"
    trail.assert_contained(canary, may_reach=(API,), seen=(r.content, second.content))
