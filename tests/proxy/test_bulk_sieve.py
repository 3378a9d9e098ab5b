"""The fast path of bulk bodies (proxy.sieve): the scrubber, the detector and the leak scanner
search only the regions where a spelling may be, and find exactly what a search of every byte
finds, however the body is chunked."""

from __future__ import annotations

import base64
import random
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from core.placeholders import mint
from proxy.forms import paired_forms
from proxy.leaks import LeakScanner, StreamLeakScanner
from proxy.matching import OPEN, matcher_for
from proxy.scrub import Detector, Scrubber
from proxy.sieve import MIN_DATA, Sieve
from tests.proxy.test_scrub import spellings

# A few fixed values (each compiles once): a token, one with escapable characters, a short one.
REALS = ["ghp_4f1d0c9b8a7e6d5c4b3a29180716f5e4d3c2", 'sk-live/4f+é "x"', "hunter2!"]
PH = "ccph_0123456789abcdefghijKLMNOP"
OTHER = "ccph_ZYXWVUTSRQPONMLKJIHGFEDCBA"


def _noise(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _words(seed: int, n: int) -> bytes:
    """Text: words of letters, digits and escape characters (long ones too), one space or
    punctuation between them."""
    rng = random.Random(seed)
    letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-%\\"
    out = bytearray()
    while len(out) < n:
        out += bytes(rng.choice(letters) for _ in range(rng.choice((3, 8, 20, 39, 45, 90))))
        out.append(rng.choice(b' ,."\n'))
    return bytes(out[:n])


def _runs(data: bytes, member: set[int]) -> list[tuple[int, int]]:
    """The maximal runs of ``member`` bytes, by a plain loop."""
    out, start = [], None
    for i, b in enumerate(data):
        if b in member and start is None:
            start = i
        elif b not in member and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(data)))
    return out


@st.composite
def bodies(draw: st.DrawFn, pieces: st.SearchStrategy[bytes]) -> bytes:
    """Binary noise (as a compressed body has) and text, with ``pieces`` put anywhere; long
    enough for the sieve to apply."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["noise", "text", "words", "piece", "piece"]))
        if kind == "noise":
            parts.append(_noise(draw(st.integers(0, 2**32)), draw(st.integers(0, 3000))))
        elif kind == "words":
            parts.append(_words(draw(st.integers(0, 2**32)), draw(st.integers(0, 20_000))))
        elif kind == "text":
            parts.append(draw(st.binary(max_size=200).map(lambda b: bytes(48 + x % 75 for x in b))))
        else:
            parts.append(draw(pieces))
    body = b"".join(parts)
    if len(body) < MIN_DATA:
        pad = _noise(draw(st.integers(0, 2**32)), MIN_DATA - len(body))
        at = draw(st.integers(0, len(body)))
        body = body[:at] + pad + body[at:]
    return body


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@st.composite
def scrub_cases(draw: st.DrawFn) -> tuple[str, bytes]:
    real = draw(st.sampled_from(REALS))
    spelling = spellings(real)
    partial = spelling.flatmap(lambda s: st.integers(1, len(s)).map(lambda n: s[:n]))
    return real, draw(bodies(st.one_of(spelling, partial)))


# -- the sieve itself --------------------------------------------------------------------------
@settings(deadline=None, max_examples=200)
@given(
    st.sets(st.integers(0, 255), min_size=1, max_size=120),
    st.integers(6, 80),
    st.integers(0, 2**32),
    st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 200)), max_size=8),
    st.booleans(),
)
def test_every_long_run_is_inside_a_region_whose_edges_are_run_edges(
    alphabet: set[int], shortest: int, seed: int, inserts: list[tuple[int, int]], tail: bool
) -> None:
    chars = bytes(sorted(alphabet))
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(MIN_DATA + rng.randrange(20_000)))
    for at, n in inserts:  # runs of the alphabet, some of them long
        at %= len(data)
        data[at : at + n] = bytes(rng.choice(chars) for _ in range(n))
    body = bytes(data)
    regions = Sieve(alphabet, shortest).regions(body, tail=tail)
    assert regions == sorted(regions)
    assert all(a < b <= c for (_, a), (b, c) in zip(regions, regions[1:], strict=False))
    runs = _runs(body, alphabet)
    for start, end in runs:
        last = end == len(body)
        if end - start >= shortest or (tail and last):
            assert any(a <= start and end <= b for a, b in regions), (start, end)
    for a, b in regions:
        assert a == 0 or body[a - 1] not in alphabet
        assert b == len(body) or body[b] not in alphabet


@settings(deadline=None, max_examples=200)
@given(
    st.sets(st.integers(0, 255), min_size=2, max_size=200),
    st.integers(6, 80),
    st.integers(0, 2**32),
    st.lists(st.tuples(st.integers(0, 40_000), st.integers(1, 200)), max_size=8),
    st.booleans(),
)
def test_dense_text_long_runs_are_found_at_every_byte(
    alphabet: set[int], shortest: int, seed: int, inserts: list[tuple[int, int]], tail: bool
) -> None:
    """Words of the alphabet with one other byte between them: the samples see long runs
    everywhere, so the runs are looked for at every byte; same guarantees."""
    chars = bytes(sorted(alphabet))
    others = bytes(b for b in range(256) if b not in alphabet) or b"\x00"
    rng = random.Random(seed)
    data = bytearray()
    while len(data) < MIN_DATA + 30_000:
        data += bytes(rng.choice(chars) for _ in range(rng.randrange(1, shortest)))
        data.append(rng.choice(others))
    for at, n in inserts:
        at %= len(data)
        data[at : at + n] = bytes(rng.choice(chars) for _ in range(n))
    body = bytes(data[: rng.randrange(MIN_DATA, len(data))])
    sieve = Sieve(alphabet, shortest)
    every = [sieve.sampled(body, step, tail=tail) for step in sieve.steps]
    for regions in [sieve.regions(body, tail=tail), *(r for r in every if r is not None)]:
        assert all(a < b <= c for (_, a), (b, c) in zip(regions, regions[1:], strict=False))
        for start, end in _runs(body, alphabet):
            if end - start >= shortest or (tail and end == len(body)):
                assert any(a <= start and end <= b for a, b in regions), (start, end)
        for a, b in regions:
            assert a == 0 or body[a - 1] not in alphabet
            assert b == len(body) or body[b] not in alphabet


def test_random_bytes_have_no_region() -> None:
    body = _noise(1, 1 << 20)
    matcher = matcher_for((REALS[0].encode(),))
    assert matcher.sieve.regions(body) == []


# -- the matcher, the scrubber, the detector ---------------------------------------------------
@settings(deadline=None, max_examples=150)
@given(scrub_cases(), st.booleans())
def test_scan_finds_what_a_scan_of_every_byte_finds(case: tuple[str, bytes], final: bool) -> None:
    real, body = case
    matcher = matcher_for((real.encode(),))
    assert list(matcher.scan(body, final=final)) == list(matcher.scan_all(body, final=final))


def _reference(real: str, body: bytes) -> bytes:
    """The scrubbed body, from a search of every byte of the whole body."""
    scrubber = Scrubber(paired_forms(real, PH))
    table = scrubber._table
    assert table is not None
    out, pos = [], 0
    for index, start, end in table.matcher.scan_all(body, final=True):
        out += [body[pos:start], table.replacement(index, body[start:end])]
        pos = end
    return b"".join([*out, body[pos:]])


@settings(deadline=None, max_examples=150)
@given(scrub_cases(), st.lists(st.integers(0, 40_000), max_size=6))
def test_any_chunking_of_a_bulk_body_scrubs_like_the_whole(
    case: tuple[str, bytes], cuts: list[int]
) -> None:
    real, body = case
    scrubber = Scrubber(paired_forms(real, PH))
    out = b"".join(scrubber.feed(chunk) for chunk in _cut(body, cuts)) + scrubber.flush()
    assert out == _reference(real, body)


@settings(deadline=None, max_examples=100)
@given(scrub_cases(), st.lists(st.integers(0, 40_000), max_size=6))
def test_the_detector_sees_a_value_in_a_bulk_body_in_any_chunking(
    case: tuple[str, bytes], cuts: list[int]
) -> None:
    real, body = case
    whole = any(i != OPEN for i, _, _ in matcher_for((real.encode(),)).scan_all(body, final=True))
    detector = Detector(paired_forms(real, PH))
    seen = any([detector.feed(chunk) for chunk in _cut(body, cuts)])
    assert seen == whole


def test_a_value_in_a_megabyte_of_binary_is_replaced_across_a_chunk_edge() -> None:
    real = REALS[0]
    body = _noise(2, 1 << 20)
    at = 300_000
    body = body[:at] + b'"' + real.encode() + b'"' + body[at:]
    scrubber = Scrubber(paired_forms(real, PH))
    out = scrubber.feed(body[: at + 20]) + scrubber.feed(body[at + 20 :]) + scrubber.flush()
    assert real.encode() not in out
    assert out == body[:at] + b'"' + PH.encode() + b'"' + body[at + 2 + len(real) :]


# -- the leak scanner --------------------------------------------------------------------------
def _forms(placeholder: str) -> st.SearchStrategy[bytes]:
    raw = placeholder.encode()
    return st.sampled_from(
        [
            raw,
            quote(placeholder, safe="").encode(),
            "".join(f"%{b:02x}" for b in raw).encode(),
            "".join(f"\\u{b:04x}" for b in raw).encode(),
            base64.b64encode(b"user:" + raw),
            base64.b64encode(b"x" + raw)[5:-3],
            raw[:-1],  # a near miss
        ]
    )


@settings(deadline=None, max_examples=150)
@given(bodies(st.one_of(_forms(PH), _forms(OTHER))), st.lists(st.integers(0, 40_000), max_size=6))
def test_the_leak_scanner_finds_what_a_scan_of_every_byte_finds(
    body: bytes, cuts: list[int]
) -> None:
    scanner = LeakScanner([("TOKEN", PH)], own=[PH])
    whole = scanner._views(body)
    assert scanner.scan(body) == whole
    stream = StreamLeakScanner(scanner)
    for chunk in _cut(body, cuts):
        stream.feed(chunk)
    assert stream.found >= whole  # a stream sees what the whole body holds


def test_a_placeholder_in_a_megabyte_of_binary_is_found() -> None:
    body = _noise(3, 1 << 20)
    for form, name in ((PH.encode(), "TOKEN"), (quote(OTHER, safe="").encode(), "<other_run>")):
        scanner = StreamLeakScanner(LeakScanner([("TOKEN", PH)], own=[PH]))
        mixed = body[:500_000] + form + body[500_000:]
        scanner.feed(mixed[:500_010])
        scanner.feed(mixed[500_010:])
        assert scanner.found == {name}
    assert LeakScanner([("TOKEN", mint())]).scan(body) == set()


def test_an_escaped_placeholder_split_anywhere_in_a_stream_is_found() -> None:
    """The stream keeps enough of a chunk for the longest spelling of a placeholder (every
    byte as ``\\u00XX``: six times its length), not just for its raw form."""
    for form in (
        "".join(f"%{b:02x}" for b in PH.encode()),
        "".join(f"\\u{b:04x}" for b in PH.encode()),
    ):
        body = b"<" + form.encode() + b">"
        for cut in range(len(body) + 1):
            scanner = StreamLeakScanner(LeakScanner([("TOKEN", PH)], own=[PH]))
            scanner.feed(body[:cut])
            scanner.feed(body[cut:])
            assert scanner.found == {"TOKEN"}, (form[:12], cut)
