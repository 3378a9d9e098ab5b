"""Response scrubbing as the addon calls it: headers, reason, whole and streamed bodies, with
the value in any spelling and the stream cut anywhere (inside escapes and compressed blocks)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.decoders import DecodeError
from proxy.forms import paired_forms
from proxy.policy import Decision
from proxy.responses import (
    body_stream,
    check_body,
    replacement_stream,
    scrub_body,
    scrub_fields,
    scrub_reason,
    small_enough_to_buffer,
)
from proxy.scrub import scrub_bytes

REAL = "sk-live/4f+é"
PH = "ccph_0123456789abcdefghijKLMNOP"
PAIRS = paired_forms(REAL, PH)
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in REAL)
BODY = ('{"a": "\\u003cb\\u003e", "echo": "' + ESCAPED + '", "z": "sk-live/4f"}\n').encode()


def _never(why: Decision) -> None:
    raise AssertionError(why)


def _stream(chunks: list[bytes], encoding: str = "") -> bytes:
    stream, _ = body_stream(PAIRS, encoding, _never)
    out = [piece for chunk in chunks for piece in stream(chunk)]
    out += stream(b"")
    assert b"" not in out, "an empty chunk would end an HTTP/1.1 chunked body early"
    return b"".join(out)


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def test_escaped_value_in_a_streamed_body_becomes_the_placeholder() -> None:
    out = _stream([BODY[i : i + 3] for i in range(0, len(BODY), 3)])
    assert json.loads(out) == {"a": "<b>", "echo": PH, "z": "sk-live/4f"}


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(0, 10_000), max_size=8), st.sampled_from(["", "gzip"]))
def test_any_chunking_of_the_wire_gives_the_whole_result(cuts: list[int], encoding: str) -> None:
    wire = gzip.compress(BODY) if encoding else BODY
    assert _stream(_cut(wire, cuts), encoding) == scrub_bytes(BODY, PAIRS)


def test_body_stream_reports_whether_the_body_leaves_decoded() -> None:
    assert body_stream(PAIRS, "", _never)[1] is False
    assert body_stream(PAIRS, "gzip", _never)[1] is True
    with pytest.raises(DecodeError):
        body_stream(PAIRS, "snappy", _never)


def test_corrupt_body_stops_the_stream() -> None:
    errors: list[Decision] = []
    stream, _ = body_stream(PAIRS, "gzip", errors.append)
    assert stream(b"\x1f\x8b\x08\x00garbage" + ESCAPED.encode()) == []
    assert stream(b"") == [] and [e.reason for e in errors] == ["undecodable_response"]


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_a_stream_to_a_request_that_carried_no_value_passes_until_a_whole_value(
    encoding: str,
) -> None:
    """Nothing held back, nothing replaced; the chunk that completes a value is not sent, and
    nothing after it."""
    stops: list[Decision] = []
    stream, _ = body_stream(PAIRS, encoding, stops.append, injected=False)
    cut = BODY.index(ESCAPED.encode()) + len(ESCAPED) - 3  # inside the value's last escape
    head, tail = BODY[:cut], BODY[cut:]
    if encoding:  # each part decodable on its own: the first one goes out whole
        gz = zlib.compressobj(wbits=31)
        head, tail = gz.compress(head) + gz.flush(zlib.Z_SYNC_FLUSH), gz.compress(tail) + gz.flush()
    assert b"".join(stream(head)) == BODY[:cut] and stops == []
    assert stream(tail) == [] and stream(b"") == []
    assert [s.reason for s in stops] == ["unexpected_value"]


def test_a_stream_to_a_request_that_carried_no_value_is_passed_as_is() -> None:
    stream, decoded = body_stream(PAIRS, "", _never, injected=False)
    guess = b'{"echo": "sk-live/4f+'  # all of the value but its last character
    assert (stream(guess), stream(b'x"}'), stream(b""), decoded) == ([guess], [b'x"}'], [], False)


class _Message:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def get_content(self, strict: bool = True) -> bytes | None:
        return self.content


def test_scrub_body_whole() -> None:
    assert scrub_body(_Message(BODY), PAIRS) == scrub_bytes(BODY, PAIRS)
    assert scrub_body(_Message(b'{"nothing": "here"}'), PAIRS) is None


def test_check_body_scrubs_for_a_request_that_carried_a_value_else_refuses() -> None:
    assert check_body(_Message(BODY), PAIRS, injected=True) == (scrub_bytes(BODY, PAIRS), None)
    scrubbed, refused = check_body(_Message(BODY), PAIRS, injected=False)
    assert scrubbed is None and refused is not None and refused.reason == "unexpected_value"
    assert REAL not in refused.detail
    assert check_body(_Message(b"sk-live/4f+"), PAIRS, injected=False) == (None, None)


def test_check_body_refuses_an_undecodable_body() -> None:
    class Broken:
        def get_content(self, strict: bool = True) -> bytes | None:
            raise ValueError("not gzip")

    for injected in (True, False):
        _, refused = check_body(Broken(), PAIRS, injected=injected)
        assert refused is not None and refused.reason == "undecodable_response"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"Location", b"https://evil.test/cb?t=sk%2dlive%2F4f%2B%C3%A9"),
        (b"X-Echo", ESCAPED.encode()),
        (b"Set-Cookie", b"t=sk-live\\/4f+\\u00E9; Path=/"),
    ],
    ids=["percent-mixed-location", "u-escaped-header", "json-escaped-cookie"],
)
def test_header_values_in_any_spelling_are_scrubbed(name: bytes, value: bytes) -> None:
    fields = ((b"Content-Type", b"text/plain"), (name, value))
    scrubbed = scrub_fields(fields, PAIRS)
    assert scrubbed[0] == fields[0]
    assert PH.encode() in scrubbed[1][1]
    assert scrub_fields(((b"A", b"b"),), PAIRS) == ((b"A", b"b"),)


def test_reason_phrase_escaped() -> None:
    assert scrub_reason(f"Bad token {ESCAPED}", PAIRS) == f"Bad token {PH}"


def test_replacement_stream_and_buffering_rule() -> None:
    stream = replacement_stream(b"refused\n")
    assert stream(b"upstream bytes") == [] and stream(b"") == [b"refused\n"]
    assert small_enough_to_buffer({"content-length": "10", "content-type": "application/json"})
    assert not small_enough_to_buffer({"content-length": "10", "content-type": "text/event-stream"})
    assert not small_enough_to_buffer({"content-length": str(2 * 1024 * 1024)})
    assert not small_enough_to_buffer({})
