"""Response scrubbing, as plain functions the addon wires to mitmproxy. Pure.

Headers are scrubbed whole; bodies stream through a decoder (for gzip, deflate, br, zstd) and a
:class:`~proxy.scrub.Scrubber`, so a value split across chunks (inside an escape sequence too)
is still replaced. A value is found in any spelling a client decodes back to it (JSON and
percent escapes in any mix, base64): see :mod:`proxy.spellings`.

**A response to a request that carried no value** (nothing was injected into it) has no reason
to hold one: a real value there is an incident, not something to scrub (``unexpected_value``).
Its body streams through a :class:`~proxy.scrub.Detector`, which holds back nothing, so no
timing says whether a chunk ended like a value; the chunk that completes a value is not sent,
and the caller kills the connection. A buffered body (:func:`check_body`) or a head (see
:func:`proxy.plan.plan_response`) with a value is refused with a 502 before any of it goes out.
A response to a request that did carry one is scrubbed, and its stream holds back a tail fixed
by length and line breaks only (:mod:`proxy.scrub`): a legitimate echo of the credential by its
own API becomes the placeholder, across chunks too, and server-sent events still go out whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from proxy.decoders import DecodeError, stream_decoder
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.scrub import Detector, Pairs, Scrubber, found_in, scrub_bytes, scrub_text

Fields = tuple[tuple[bytes, bytes], ...]


def _scrub(raw: bytes, pairs: Pairs) -> bytes:
    return scrub_text(raw.decode("utf-8", "surrogateescape"), pairs).encode(
        "utf-8", "surrogateescape"
    )


def scrub_fields(fields: Fields, pairs: Pairs) -> Fields:
    """Names and values: a hostile upstream may put a value in either. Returns ``fields``
    itself when nothing needs scrubbing (the common case, checked with one search)."""
    if not found_in(b"\n".join(k + b":" + v for k, v in fields), pairs):
        return fields
    return tuple((_scrub(k, pairs), _scrub(v, pairs)) for k, v in fields)


Chunks = list[bytes]


def _out(data: bytes) -> Chunks:
    # Never hand mitmproxy an empty chunk: HTTP/1.1 chunked framing would send it as the
    # terminating "0\r\n\r\n" and end the body early.
    return [data] if data else []


def unexpected(where: str) -> Decision:
    """The incident: a real value in ``where`` of a response to a request that carried none."""
    detail = f"a real value came back in {where} of a response to a request that carried none"
    return deny(Reason.UNEXPECTED_VALUE, detail)


def body_stream(
    pairs: Pairs, encoding: str, on_error: Callable[[Decision], None], *, injected: bool = True
) -> tuple[Callable[[bytes], Chunks], bool]:
    """A chunk callback (``b""`` ends the stream) and whether the body leaves decoded.

    ``injected``: whether the request carried a value; the body is scrubbed if so, else watched
    (module docstring). Raises DecodeError at once for an encoding that can't be inspected. A
    body that turns out to be corrupt mid-stream (``undecodable_response``), or that brings a
    value back to a request that carried none (``unexpected_value``), calls ``on_error`` with
    the refusal (it should abort the client connection) and forwards nothing more: not the
    undecodable bytes, not the chunk that completed the value, not the held-back tail.
    """
    decode = stream_decoder(encoding)
    scrubber, detector = Scrubber(pairs), None if injected else Detector(pairs)
    stopped: list[Decision] = []

    def stop(why: Decision) -> Chunks:
        stopped.append(why)
        on_error(why)
        return []

    def stream(chunk: bytes) -> Chunks:
        if stopped:
            return []
        try:
            data = decode(chunk, final=not chunk) if decode else chunk
        except DecodeError as exc:
            return stop(deny(Reason.UNDECODABLE_RESPONSE, str(exc)))
        if detector is not None:
            return stop(unexpected("the body")) if detector.feed(data) else _out(data)
        return _out(scrubber.feed(data) + (b"" if chunk else scrubber.flush()))

    return stream, decode is not None


def replacement_stream(body: bytes) -> Callable[[bytes], Chunks]:
    """Drop every upstream chunk; send ``body`` at the end instead."""
    return lambda chunk: [] if chunk else _out(body)


def scrub_reason(reason: str, pairs: Pairs) -> str:
    """The status line's reason phrase: a hostile upstream may echo a value there too."""
    return scrub_text(reason, pairs)


BUFFER_LIMIT = 1024 * 1024


def small_enough_to_buffer(headers: Mapping[str, str]) -> bool:
    """A response with a known length up to 1 MiB that is not an event stream."""
    length = headers.get("content-length", "")
    kind = headers.get("content-type", "").lower()
    return length.isdigit() and int(length) <= BUFFER_LIMIT and "event-stream" not in kind


class _Body(Protocol):
    def get_content(self, strict: bool = True) -> bytes | None: ...


def scrub_body(message: _Body, pairs: Pairs) -> bytes | None:
    """The decoded body scrubbed, or None when nothing changed. ValueError if undecodable."""
    content = message.get_content(strict=True) or b""
    scrubbed = scrub_bytes(content, pairs) if pairs else content
    return scrubbed if scrubbed != content else None


def check_body(
    message: _Body, pairs: Pairs, *, injected: bool
) -> tuple[bytes | None, Decision | None]:
    """A buffered body: (scrubbed, None) for a request that carried a value (scrubbed is None
    when nothing changed); (None, refusal) when it can't be decoded or brings a value back to a
    request that carried none (``injected`` False); else (None, None)."""
    try:
        if injected:
            return scrub_body(message, pairs), None
        content = message.get_content(strict=True) or b""
    except ValueError:
        return None, deny(Reason.UNDECODABLE_RESPONSE, "the response body can't be decoded")
    return None, unexpected("the body") if found_in(content, pairs) else None
