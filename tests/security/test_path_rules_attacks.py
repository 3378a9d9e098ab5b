"""``--paths '/v1/*'``: paths that a server routes outside ``/v1/`` get no value.

Attack: the real value was injected, under ``--paths '/v1/*' --methods GET``, for
``/v1/..;/admin``, ``/v1/%2e%2e;/admin``, ``/v1/%252e%252e/admin``, overlong UTF-8 and ``%u`` dot
forms, ``..%00`` and ``..%09``. Each payload is a named case; each asserts the upstream got the
placeholder, never the value, and the value went nowhere else.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import API
from tests.security.wire import open_tunnel
from tests.support.upstream import only_received_with, tagged

ATTACKS = {
    "tomcat-path-parameter": "/v1/..;/admin",
    "encoded-dots-with-parameter": "/v1/%2e%2e;/admin",
    "double-encoded-dots": "/v1/%252e%252e/admin",
    "overlong-utf8-dots": "/v1/%c0%ae%c0%ae/admin",
    "iis-u-dots": "/v1/%u002e%u002e/admin",
    "dots-then-nul": "/v1/..%00/admin",
    "dots-then-tab": "/v1/..%09/admin",
    "encoded-slash": "/v1/..%2fadmin",
    "backslash": "/v1/..\\admin",
    "trailing-dot-trimming": "/v1/.../admin",
    "empty-parameter-segment": "/v1/;/../admin",
    "upper-case-encoded-dots": "/v1/%2E%2E/admin",
}


@pytest.mark.parametrize("target", list(ATTACKS.values()), ids=list(ATTACKS))
def test_ambiguous_path_gets_no_value(proxy, upstream, trail, canary, secret, target, tag):
    secret("PATH_RULE_TOKEN", paths=("/v1/*",), methods=("GET",))
    run = proxy.register(("PATH_RULE_TOKEN",))
    ph = run.placeholders["PATH_RULE_TOKEN"]
    port = upstream.port
    with open_tunnel(run.proxy_url, f"{API}:{port}", proxy.ca_cert, sni=API) as conn:
        head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {ph}")]
        ok = conn.request("GET", tagged("/v1/ok", f"ok-{tag}"), head)
        # The rule does apply to a plain /v1/ path: the test can tell injection from none.
        assert only_received_with(upstream, f"ok-{tag}").header("Authorization") == (
            f"Bearer {canary}"
        )
        before = trail.requests_with(canary)
        resp = conn.request("GET", tagged(target, f"attack-{tag}"), head)
    if resp.status == 200:
        got = only_received_with(upstream, f"attack-{tag}")
        assert got.header("Authorization") == f"Bearer {ph}", target
    else:
        assert resp.status in (400, 403), resp.raw()
    assert trail.requests_with(canary) == before
    trail.assert_contained(canary, may_reach=(API,), seen=(ok.raw(), resp.raw()))
