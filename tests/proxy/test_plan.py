"""The request and response plans: named cases, each with its outcome and reason."""

from __future__ import annotations

import gzip

import pytest
from mitmproxy import http

from proxy.leaks import LeakScanner, StreamLeakScanner
from proxy.plan import (
    BodyMode,
    ResponseMode,
    leak_refusal,
    plan_request,
    plan_response,
    reporting_stream,
)
from proxy.rewrite import MAX_INSPECT_BYTES
from proxy.runs import parse_run

PH = "ccph_" + "P" * 26
VALUE = "real-secret-value-0123456789"
TOO_BIG = str(MAX_INSPECT_BYTES + 1)


def run(on_leak: str = "log", surfaces: tuple[str, ...] = ("header",)):  # type: ignore[no-untyped-def]
    return parse_run(
        {
            "run_id": "r-plan1",
            "secrets": [
                {
                    "name": "TOKEN",
                    "placeholder": PH,
                    "domains": ["api.example.test"],
                    "surfaces": list(surfaces),
                }
            ],
            "on_leak": on_leak,
        }
    )


HEADER, BODY = ("header",), ("header", "body")


@pytest.mark.parametrize(
    ("on_leak", "surfaces", "version", "length", "leaks", "body", "reason", "status"),
    [
        ("log", HEADER, "HTTP/1.1", None, (), "stream", None, None),
        ("log", None, "HTTP/1.1", "12", (), "stream", None, None),
        ("log", BODY, "HTTP/1.1", "12", (), "buffer", None, None),
        ("block", HEADER, "HTTP/1.1", None, (), "buffer", None, None),
        ("log", HEADER, "HTTP/1.0", None, (), "stream", None, None),
        ("log", HEADER, "HTTP/2.0", None, (), "stream", None, None),
        ("log", HEADER, "HTTP/3", None, (), "stream", "bad_request_line", 400),
        ("log", HEADER, "FOO/1.1", None, (), "stream", "bad_request_line", 400),
        ("block", HEADER, "HTTP/0.9", None, ("OTHER",), "buffer", "bad_request_line", 400),
        ("block", HEADER, "HTTP/1.1", None, ("OTHER",), "buffer", "placeholder_leak", 403),
        ("log", HEADER, "HTTP/1.1", None, ("OTHER",), "stream", None, None),
        ("log", BODY, "HTTP/1.1", TOO_BIG, (), "buffer", "too_large", 413),
        ("block", HEADER, "HTTP/1.1", TOO_BIG, (), "buffer", "too_large", 413),
        ("log", BODY, "HTTP/1.1", str(MAX_INSPECT_BYTES), (), "buffer", None, None),
        ("log", HEADER, "HTTP/1.1", TOO_BIG, (), "stream", None, None),
        ("block", BODY, "HTTP/1.1", TOO_BIG, ("OTHER",), "buffer", "placeholder_leak", 403),
        ("log", BODY, "HTTP/1.1", "twelve", (), "buffer", None, None),
    ],
    ids=[
        "header-secret-streams",
        "no-secret-streams",
        "body-secret-buffers",
        "block-mode-buffers-every-body",
        "http-1.0-accepted",
        "http-2-accepted",
        "http-3-refused",
        "garbage-version-refused",
        "version-refused-before-leak",
        "head-leak-blocked",
        "head-leak-only-logged",
        "body-secret-too-large-refused",
        "block-mode-too-large-refused",
        "body-secret-at-limit-ok",
        "streamed-body-any-size",
        "leak-refused-before-too-large",
        "non-numeric-length-buffered-and-checked-later",
    ],
)
def test_plan_request(on_leak, surfaces, version, length, leaks, body, reason, status):
    policy = run(on_leak, surfaces or HEADER)
    secrets = policy.secrets if surfaces else ()
    plan = plan_request(
        policy, secrets, http_version=version, content_length=length, head_leaks=set(leaks)
    )
    assert plan.body == body
    if reason is None:
        assert plan.refusal is None
    else:
        assert plan.refusal is not None and not plan.refusal.allowed
        assert (plan.refusal.reason, plan.status) == (reason, status)
        assert plan.refusal.detail


@pytest.mark.parametrize(
    ("on_leak", "leaks", "blocked"),
    [("log", set(), False), ("log", {"OTHER"}, False), ("block", set(), False),
     ("block", {"OTHER"}, True)],
    ids=["log-nothing", "log-leak", "block-nothing", "block-leak"],
)  # fmt: skip
def test_leak_refusal(on_leak, leaks, blocked):
    refused = leak_refusal(run(on_leak), leaks)
    assert (refused is not None) == blocked
    if refused is not None:
        assert refused.reason == "placeholder_leak" and not refused.allowed


def test_reporting_stream_passes_chunks_and_finds_a_split_placeholder():
    scanner = StreamLeakScanner(LeakScanner([("OTHER", PH)]))
    stream = reporting_stream(scanner)
    assert [stream(PH[:9].encode()), stream(PH[9:].encode())] == [PH[:9].encode(), PH[9:].encode()]
    assert scanner.found == {"OTHER"}


PAIRS = ((VALUE.encode(), PH.encode()),)
SMALL, BIG = {"content-length": "10"}, {"content-length": str(2 * 1024 * 1024)}
SSE = {"content-length": "10", "content-type": "text/event-stream"}


def response_head(status: int, headers: dict[str, str]) -> http.Response:
    """A response head as received: exactly these headers (make() would add a length)."""
    head = http.Response.make(status)
    head.headers = http.Headers(**{k.replace("-", "_"): v for k, v in headers.items()})
    return head


@pytest.mark.parametrize(
    ("method", "status", "headers", "pairs", "mode"),
    [
        ("HEAD", 200, BIG, PAIRS, "head_only"),
        ("GET", 204, {}, PAIRS, "head_only"),
        ("GET", 304, BIG, PAIRS, "head_only"),
        ("GET", 101, {}, PAIRS, "head_only"),
        ("GET", 103, {}, PAIRS, "head_only"),
        ("GET", 200, SMALL, PAIRS, "buffer"),
        ("GET", 200, SMALL, (), "buffer"),
        ("GET", 200, SSE, PAIRS, "scrub"),
        ("GET", 200, SSE, (), "stream"),
        ("GET", 200, {}, (), "stream"),
        ("GET", 200, BIG, PAIRS, "scrub"),
        ("POST", 500, {}, PAIRS, "scrub"),
    ],
    ids=["head-request", "no-content", "not-modified", "switching-protocols", "early-hints",
         "small-buffered", "small-buffered-without-values", "event-stream-scrubbed",
         "event-stream-passed", "unknown-length-passed", "large-scrubbed", "error-page-scrubbed"],
)  # fmt: skip
def test_plan_response_mode(method, status, headers, pairs, mode):
    plan = plan_response(method, response_head(status, headers), pairs, print)
    assert plan.mode == mode and plan.refusal is None
    assert (plan.stream is not None) == (mode == ResponseMode.SCRUB)


def test_plan_response_scrubs_the_head():
    head = response_head(401, {"X-Echo": f"Bearer {VALUE}", "Content-Length": "10"})
    head.reason = f"Bad token {VALUE}"
    plan = plan_response("GET", head, PAIRS, print)
    assert (b"X-Echo", f"Bearer {PH}".encode()) in plan.fields
    assert plan.reason == f"Bad token {PH}"
    assert head.headers.fields != plan.fields  # the addon applies it; the plan is a value


@pytest.mark.parametrize(
    ("version", "encoding", "expected"),
    [
        ("HTTP/1.1", None, [(b"transfer-encoding", b"chunked")]),
        ("HTTP/2.0", None, []),
        ("HTTP/1.1", "gzip", [(b"transfer-encoding", b"chunked")]),
    ],
    ids=["http1-chunked", "http2-no-framing-header", "gzip-decoded-and-chunked"],
)
def test_a_scrubbed_stream_drops_length_and_decoded_encoding(version, encoding, expected):
    headers = dict(BIG, **({"content-encoding": encoding} if encoding else {}))
    head = response_head(200, headers)
    head.http_version = version
    plan = plan_response("GET", head, PAIRS, print)
    assert plan.mode is ResponseMode.SCRUB and plan.stream is not None
    assert [(k.lower(), v) for k, v in plan.fields] == expected
    if encoding == "gzip":
        body = gzip.compress(f"echo {VALUE}".encode())
        assert b"".join([*plan.stream(body), *plan.stream(b"")]) == f"echo {PH}".encode()


def test_an_unscrubbable_encoding_is_refused():
    head = response_head(200, dict(BIG, **{"content-encoding": "snappy"}))
    plan = plan_response("GET", head, PAIRS, print)
    assert plan.refusal is not None and plan.refusal.reason == "undecodable_response"


def test_body_modes_are_what_the_addon_compares():
    assert {m.value for m in BodyMode} == {"stream", "buffer"}
