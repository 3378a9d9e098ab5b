"""Requests that may override their method lose secrets with method rules (proxy.overrides)."""

from __future__ import annotations

import pytest

from core.domains import parse_pattern
from proxy.overrides import honouring_method_rules, may_override_method
from proxy.runs import RunSecret

RULED = RunSecret("RO", "ccph_a", (parse_pattern("api.test"),), methods=("GET",))
FREE = RunSecret("ANY", "ccph_b", (parse_pattern("api.test"),))


@pytest.mark.parametrize(
    ("head", "path", "overrides"),
    [
        pytest.param((), "/v1/x?a=1", False, id="plain"),
        pytest.param(((b"X-HTTP-Method-Override", b"DELETE"),), "/", True, id="override"),
        pytest.param(((b"x-http-method", b"PUT"),), "/", True, id="x-http-method"),
        pytest.param(((b"X-Method-Override", b"PUT"),), "/", True, id="x-method-override"),
        pytest.param(((b"X_HTTP_METHOD_OVERRIDE", b"PUT"),), "/", True, id="underscores"),
        pytest.param((), "/v1?_method=DELETE", True, id="query"),
        pytest.param((), "/v1?%5fmethod=DELETE", True, id="encoded-query"),
        pytest.param((), "/v1?x=1;_Method=DELETE", True, id="semicolon-query"),
        pytest.param((), "/v1/_method/x", False, id="in-the-path-only"),
        pytest.param((), "/v1?my_method=x", False, id="other-parameter"),
        pytest.param(((b"Content-Type", b"application/x-www-form-urlencoded"),), "/", True,
                     id="urlencoded-form"),
        pytest.param(((b"content-type", b"Multipart/Form-Data; boundary=x"),), "/", True,
                     id="multipart-form"),
        pytest.param(((b"Content-Type", b"application/json"),), "/", False, id="json"),
    ],
)  # fmt: skip
def test_may_override_method(head, path, overrides):
    assert may_override_method(head, path) is overrides


def test_only_secrets_with_method_rules_are_dropped():
    head = ((b"X-HTTP-Method-Override", b"DELETE"),)
    assert honouring_method_rules((RULED, FREE), head, "/") == (FREE,)
    assert honouring_method_rules((RULED, FREE), (), "/") == (RULED, FREE)
    assert honouring_method_rules((FREE,), head, "/") == (FREE,)
