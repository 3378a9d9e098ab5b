"""The channels besides a response's head and body (proxy.channels): table-driven."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from proxy.channels import after_body, request_refusal, response_refusal, scrub_control

PAIRS = ((b"real-value-123", b"ccph_placeholder"),)


def fields(*items: tuple[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode(), v.encode()) for k, v in items)


@pytest.mark.parametrize(
    ("head", "refused"),
    [
        pytest.param((), None, id="plain"),
        pytest.param((("Upgrade", "websocket"),), None, id="websocket"),
        pytest.param((("upgrade", "WebSocket"),), None, id="websocket-any-case"),
        pytest.param((("Upgrade", "h2c"),), ("upgrade_refused", 403), id="h2c"),
        pytest.param((("Upgrade", "foo/1"),), ("upgrade_refused", 403), id="other-protocol"),
        pytest.param((("Upgrade", "websocket, foo"),), ("upgrade_refused", 403), id="two"),
        pytest.param((("Transfer-Encoding", "chunked"),), None, id="chunked"),
        pytest.param((("Transfer-Encoding", " Chunked "),), None, id="chunked-spaced"),
        pytest.param(
            (("Transfer-Encoding", "gzip, chunked"),), ("transfer_encoding", 400), id="gzip"
        ),
        pytest.param(
            (("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")),
            ("transfer_encoding", 400),
            id="chunked-twice",
        ),
    ],
)
def test_request_refusal(head, refused):
    got = request_refusal(fields(*head))
    assert (None if got is None else (got[0].reason, got[1])) == refused


@dataclass
class Head:
    status_code: int
    headers: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(fields=()))
    trailers: SimpleNamespace | None = None


@pytest.mark.parametrize(
    ("status", "head", "injected", "refused"),
    [
        pytest.param(200, (("Transfer-Encoding", "chunked"),), ["T"], None, id="chunked"),
        pytest.param(200, (("Transfer-Encoding", "gzip, chunked"),), [], "transfer_encoding",
                     id="gzip-chunked"),
        pytest.param(200, (("Transfer-Encoding", "gzip"),), [], "transfer_encoding", id="gzip"),
        pytest.param(206, (), ["T"], "partial_response", id="206-with-a-value"),
        pytest.param(206, (), [], None, id="206-without"),
    ],
)  # fmt: skip
def test_response_refusal(status, head, injected, refused):
    got = response_refusal(Head(status, SimpleNamespace(fields=fields(*head))), injected)
    assert (got.reason if got else None) == refused


def _flow(status: int, trailers: tuple | None, *, websocket: bool = False, http2: bool = True):  # type: ignore[type-arg]
    resp = Head(status, trailers=None if trailers is None else SimpleNamespace(fields=trailers))
    request = SimpleNamespace(is_http2=http2)
    return SimpleNamespace(
        request=request, response=resp, websocket=object() if websocket else None
    )


def test_a_101_that_starts_no_websocket_is_refused():
    assert after_body(_flow(101, None), PAIRS).reason == "upgrade_refused"  # type: ignore[union-attr]
    assert after_body(_flow(101, None, websocket=True), PAIRS) is None


def test_trailers_are_scrubbed_for_http2_and_dropped_for_http1():
    flow = _flow(200, ((b"grpc-message", b"bad real-value-123"),))
    assert after_body(flow, PAIRS) is None
    assert flow.response.trailers.fields == ((b"grpc-message", b"bad ccph_placeholder"),)
    flow = _flow(200, ((b"x", b"real-value-123"),), http2=False)
    assert after_body(flow, PAIRS) is None and flow.response.trailers is None


def test_control_payload_is_scrubbed_and_fits_its_frame():
    assert scrub_control(b"ping real-value-123", PAIRS) == b"ping ccph_placeholder"
    assert len(scrub_control(b"x" * 120 + b"real-value-123", PAIRS)) == 125
    assert scrub_control(b"untouched", ()) == b"untouched"
