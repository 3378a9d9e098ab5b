"""``--methods GET``: a request that a framework may read as another method gets no value.

Attack: under ``--methods GET``, ``GET`` with ``X-HTTP-Method-Override: DELETE`` got the real
value, and a server honouring the header acted on a DELETE. The same for the other override
headers (any case, ``_`` for ``-`` as CGI and WSGI read them), a ``_method`` query parameter
(plain, percent-encoded, after a ``;``), and a form body, where Rails, Laravel and Symfony read
``_method``. Each case asserts that the upstream got the placeholder, never the value; a plain
request with the same rule still gets the value, and a secret without method rules is not
affected.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import API
from tests.security.wire import Response, open_tunnel
from tests.support.upstream import new_tag, only_received_with, tagged

OVERRIDES = {
    "x-http-method-override": ("/echo", [("X-HTTP-Method-Override", "DELETE")]),
    "x-http-method": ("/echo", [("X-HTTP-Method", "DELETE")]),
    "x-method-override": ("/echo", [("X-Method-Override", "DELETE")]),
    "lower-case-header": ("/echo", [("x-http-method-override", "delete")]),
    "underscored-header": ("/echo", [("X_HTTP_Method_Override", "DELETE")]),
    "query-parameter": ("/echo?_method=DELETE", []),
    "encoded-query-parameter": ("/echo?%5Fmethod=DELETE", []),
    "upper-case-query-parameter": ("/echo?_METHOD=DELETE", []),
    "query-parameter-after-semicolon": ("/echo?a=1;_method=DELETE", []),
}
FORMS = {
    "urlencoded-form": ("application/x-www-form-urlencoded", b"_method=DELETE"),
    "multipart-form": (
        "multipart/form-data; boundary=xx",
        b'--xx\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--xx--\r\n',
    ),
}


def _send(run, proxy, port, method, target, headers, body=b""):  # type: ignore[no-untyped-def]
    ph = next(iter(run.placeholders.values()))
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}"), *headers]
        resp: Response = conn.request(method, target, head, body)
    return resp


def _assert_control_gets_the_value(run, proxy, upstream, method, canary):  # type: ignore[no-untyped-def]
    """The rule applies to the plain request: the test can tell injection from none."""
    plain = new_tag()
    resp = _send(run, proxy, upstream.port, method, tagged("/echo", plain), [])
    assert resp.status == 200
    got = only_received_with(upstream, plain)
    assert got.header("Authorization") == f"Bearer {canary}"


@pytest.mark.parametrize(("target", "headers"), list(OVERRIDES.values()), ids=list(OVERRIDES))
def test_method_override_gets_no_value(
    proxy, upstream, trail, canary, secret, target, headers, tag
):
    secret("RO_TOKEN", methods=("GET",))
    run = proxy.register(("RO_TOKEN",))
    _assert_control_gets_the_value(run, proxy, upstream, "GET", canary)
    before = trail.requests_with(canary)
    resp = _send(run, proxy, upstream.port, "GET", tagged(target, tag), headers)
    assert resp.status == 200, resp.raw()
    got = only_received_with(upstream, tag)
    assert got.header("Authorization") == f"Bearer {run.placeholders['RO_TOKEN']}", target
    assert trail.requests_with(canary) == before
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))
    assert [e["secrets_injected"] for e in trail.requests(run)] == [["RO_TOKEN"], []]


@pytest.mark.parametrize(("content_type", "body"), list(FORMS.values()), ids=list(FORMS))
def test_form_post_under_a_method_rule_gets_no_value(
    proxy, upstream, trail, canary, secret, content_type, body, tag
):
    """``--methods GET,POST``: the form's ``_method`` could make the POST a DELETE."""
    secret("RW_TOKEN", methods=("GET", "POST"))
    run = proxy.register(("RW_TOKEN",))
    _assert_control_gets_the_value(run, proxy, upstream, "POST", canary)
    before = trail.requests_with(canary)
    resp = _send(
        run,
        proxy,
        upstream.port,
        "POST",
        tagged("/echo", tag),
        [("Content-Type", content_type)],
        body,
    )
    assert resp.status == 200, resp.raw()
    got = only_received_with(upstream, tag)
    assert got.header("Authorization") == f"Bearer {run.placeholders['RW_TOKEN']}"
    assert trail.requests_with(canary) == before
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))


def test_secret_without_method_rules_is_not_affected(proxy, upstream, trail, canary, secret, tag):
    secret("ANY_TOKEN")
    run = proxy.register(("ANY_TOKEN",))
    override = [("X-HTTP-Method-Override", "DELETE")]
    resp = _send(run, proxy, upstream.port, "GET", tagged("/echo?_method=PUT", tag), override)
    assert resp.status == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {canary}"
    trail.assert_contained(canary, may_reach=(API,), seen=(resp.raw(),))


def test_override_is_a_leak_signal_and_blocked_under_on_leak_block(
    proxy, upstream, trail, canary, secret, tag
):
    """The placeholder goes where its secret does not apply: like a wrong method, a leak."""
    secret("RO_TOKEN", methods=("GET",))
    run = proxy.register(("RO_TOKEN",), on_leak="block")
    override = [("X-HTTP-Method-Override", "DELETE")]
    resp = _send(run, proxy, upstream.port, "GET", tagged("/echo", tag), override)
    assert (resp.status, resp.refusal) == (403, "placeholder_leak")
    assert trail.leaks(run)
    trail.assert_contained(canary, seen=(resp.raw(),))
