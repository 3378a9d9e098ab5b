"""Incremental response decoding for streaming scrubbing."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
from backports import zstd

from proxy.decoders import DecodeError, stream_decoder

DATA = b"token=REALVALUE " * 500

ENCODED = {
    "gzip": gzip.compress(DATA),
    "deflate": zlib.compress(DATA),
    "br": brotli.compress(DATA),
    "zstd": zstd.compress(DATA),
}


@pytest.mark.parametrize("encoding", sorted(ENCODED))
def test_chunked_decoding_gives_the_original(encoding):
    decode = stream_decoder(encoding)
    assert decode is not None
    blob = ENCODED[encoding]
    out = b"".join(decode(blob[i : i + 7]) for i in range(0, len(blob), 7))
    assert out + decode(b"", final=True) == DATA


def test_raw_deflate_is_accepted():
    c = zlib.compressobj(wbits=-15)
    blob = c.compress(DATA) + c.flush()
    decode = stream_decoder("deflate")
    assert decode is not None
    assert decode(blob) + decode(b"", final=True) == DATA


def test_identity_needs_no_decoder():
    assert stream_decoder("") is None and stream_decoder("identity") is None


def test_unknown_encoding_fails_closed():
    with pytest.raises(DecodeError, match="snappy"):
        stream_decoder("snappy")


def test_corrupt_gzip_fails_closed():
    decode = stream_decoder("gzip")
    assert decode is not None
    with pytest.raises(DecodeError):
        decode(b"\x1f\x8b\x08\x00garbage-garbage-garbage", final=True)
