"""Response scrubbing, as plain functions the addon wires to mitmproxy. Pure.

Headers are scrubbed whole; bodies stream through a decoder (for gzip, deflate, br, zstd) and a
:class:`~proxy.scrub.Scrubber` that holds back only a possible partial match, so server-sent
events flow without delay and a value split across chunks (inside an escape sequence too) is
still replaced. A value is found in any spelling a client decodes back to it (JSON and percent
escapes in any mix, base64): see :mod:`proxy.spellings`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from proxy.decoders import DecodeError, stream_decoder
from proxy.scrub import Pairs, Scrubber, found_in, scrub_bytes, scrub_text

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


def body_stream(
    pairs: Pairs, encoding: str, on_error: Callable[[DecodeError], None]
) -> tuple[Callable[[bytes], Chunks], bool]:
    """A chunk callback (``b""`` ends the stream) and whether the body leaves decoded.

    Raises DecodeError at once for an encoding that can't be inspected. A body that turns out
    to be corrupt mid-stream calls ``on_error`` (which should abort the client connection) and
    forwards nothing more: not the undecodable bytes, not the held-back tail.
    """
    decode = stream_decoder(encoding)
    scrubber = Scrubber(pairs)
    failed: list[DecodeError] = []

    def stream(chunk: bytes) -> Chunks:
        if failed:
            return []
        try:
            if chunk:
                return _out(scrubber.feed(decode(chunk) if decode else chunk))
            tail = decode(b"", final=True) if decode else b""
        except DecodeError as exc:
            failed.append(exc)
            on_error(exc)
            return []
        return _out(scrubber.feed(tail) + scrubber.flush())

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
