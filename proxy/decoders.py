"""Incremental decoders for response Content-Encoding, so scrubbing can stream. Pure.

``stream_decoder(encoding)`` returns None for identity, a callable ``decode(chunk, final=False)``
for gzip, deflate, br and zstd (stacked encodings such as ``gzip, br`` are undone in reverse
order), and raises DecodeError for anything else: an encoding we can't read is never forwarded
unscrubbed.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from typing import Protocol

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # the backport of the 3.14 standard library module, declared in pyproject.toml
    from backports import zstd

from core.errors import CoatcheckError


class DecodeError(CoatcheckError):
    pass


class _Step(Protocol):
    def __call__(self, data: bytes, final: bool = False) -> bytes: ...


def _zlib(wbits: int) -> _Step:
    obj = zlib.decompressobj(wbits)

    def step(data: bytes, final: bool = False) -> bytes:
        try:
            out = obj.decompress(data)
            return out + obj.flush() if final else out
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed body: {exc}") from None

    return step


def _deflate() -> _Step:
    # "deflate" is zlib-wrapped per the RFC, but raw deflate is common: sniff the first byte.
    inner: list[_Step] = []

    def step(data: bytes, final: bool = False) -> bytes:
        if not inner:
            if not data:
                return b""
            inner.append(_zlib(15 if (data[0] & 0x0F) == 8 else -15))
        return inner[0](data, final)

    return step


def _brotli() -> _Step:
    obj = brotli.Decompressor()

    def step(data: bytes, final: bool = False) -> bytes:
        try:
            return obj.process(data) if data else b""
        except brotli.error as exc:
            raise DecodeError(f"corrupt brotli body: {exc}") from None

    return step


def _zstd() -> _Step:
    # One decompressor per frame: a body may hold several frames back to back.
    state = [zstd.ZstdDecompressor()]

    def step(data: bytes, final: bool = False) -> bytes:
        out = []
        try:
            while data:
                obj = state[0]
                if obj.eof:
                    state[0] = obj = zstd.ZstdDecompressor()
                out.append(obj.decompress(data))
                data = obj.unused_data if obj.eof else b""
            return b"".join(out)
        except zstd.ZstdError as exc:
            raise DecodeError(f"corrupt zstd body: {exc}") from None

    return step


_STEPS: dict[str, Callable[[], _Step]] = {
    "gzip": lambda: _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def stream_decoder(encoding: str) -> _Step | None:
    names = [e.strip().lower() for e in encoding.split(",") if e.strip()]
    names = [n for n in names if n != "identity"]
    if not names:
        return None
    unknown = [n for n in names if n not in _STEPS]
    if unknown:
        raise DecodeError(f"response Content-Encoding {', '.join(unknown)} can't be inspected")
    steps = [_STEPS[n]() for n in reversed(names)]

    def decode(data: bytes, final: bool = False) -> bytes:
        for s in steps:
            data = s(data, final)
        return data

    return decode
