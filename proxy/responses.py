"""Response scrubbing, as plain functions the addon wires to mitmproxy. Pure.

Headers are scrubbed whole; bodies stream through a decoder (for gzip, deflate, br, zstd) and a
:class:`~proxy.scrub.Scrubber` that holds back only a possible partial match, so server-sent
events flow without delay and a value split across chunks is still replaced.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy.decoders import stream_decoder
from proxy.scrub import Pairs, Scrubber, scrub_text

Fields = tuple[tuple[bytes, bytes], ...]


def scrub_fields(fields: Fields, pairs: Pairs) -> Fields:
    return tuple(
        (
            k,
            scrub_text(v.decode("utf-8", "surrogateescape"), pairs).encode(
                "utf-8", "surrogateescape"
            ),
        )
        for k, v in fields
    )


def body_stream(pairs: Pairs, encoding: str) -> tuple[Callable[[bytes], bytes], bool]:
    """A chunk callback (``b""`` ends the stream) and whether the body leaves decoded.

    Raises DecodeError at once for an encoding that can't be inspected.
    """
    decode = stream_decoder(encoding)
    scrubber = Scrubber(pairs)

    def stream(chunk: bytes) -> bytes:
        if chunk:
            return scrubber.feed(decode(chunk) if decode else chunk)
        tail = decode(b"", final=True) if decode else b""
        return scrubber.feed(tail) + scrubber.flush()

    return stream, decode is not None
