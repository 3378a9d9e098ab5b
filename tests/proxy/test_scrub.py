from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.forms import paired_forms
from proxy.scrub import Scrubber, _compile_regex, _Table, contains_any, scrub_bytes, scrub_text

Pairs = list[tuple[bytes, bytes]]

PAIRS = [(b"abcd", b"X"), (b"bc", b"Y"), (b"abc", b"Z")]

# (data, expected) with PAIRS
CASES = {
    "no needle": (b"hello", b"hello"),
    "empty": (b"", b""),
    "whole needle": (b"abcd", b"X"),
    "longest wins": (b"-abcd-", b"-X-"),
    "shorter when longer fails": (b"-abcx-", b"-Zx-"),
    "leftmost wins over longer later": (b"xbcd", b"xYd"),
    "non-overlapping": (b"abcdbc", b"XY"),
    "repeated": (b"bcbcbc", b"YYY"),
    "prefix only at end": (b"xxab", b"xxab"),
    "replacement not rescanned": (b"abc", b"Z"),
}


@pytest.mark.parametrize(("data", "expected"), CASES.values(), ids=CASES.keys())
def test_scrub_bytes(data: bytes, expected: bytes) -> None:
    assert scrub_bytes(data, PAIRS) == expected


@pytest.mark.parametrize(("data", "expected"), CASES.values(), ids=CASES.keys())
def test_every_two_chunk_split_gives_the_same(data: bytes, expected: bytes) -> None:
    for cut in range(len(data) + 1):
        scrubber = Scrubber(PAIRS)
        assert scrubber.feed(data[:cut]) + scrubber.feed(data[cut:]) + scrubber.flush() == expected


def test_byte_by_byte() -> None:
    scrubber = Scrubber(PAIRS)
    out = b"".join(scrubber.feed(bytes([b])) for b in b"xxabcdabcqbc") + scrubber.flush()
    assert out == b"xxXZqY"


def test_carry_is_the_longest_partial_tail_only() -> None:
    scrubber = Scrubber([(b"secret-token", b"PH")])
    assert scrubber.feed(b"data: sec") == b"data: "
    assert scrubber.held == 3
    assert scrubber.feed(b"ret-tok") == b""
    assert scrubber.held == 10
    assert scrubber.feed(b"en\n\n") == b"PH\n\n"
    assert scrubber.held == 0
    assert scrubber.flush() == b""


def test_partial_match_that_fails_is_released() -> None:
    scrubber = Scrubber([(b"secret-token", b"PH")])
    assert scrubber.feed(b"a secret-to") == b"a "
    assert scrubber.feed(b"y and more") == b"secret-toy and more"
    assert scrubber.held == 0


def test_held_tail_starts_at_the_earliest_partial() -> None:
    scrubber = Scrubber([(b"aab", b"X")])
    assert scrubber.feed(b"zaaa") == b"za"  # "aa" might still become "aab"
    assert scrubber.feed(b"b") == b"X"


def test_server_sent_events_pass_through_at_once() -> None:
    scrubber = Scrubber(paired_forms("sk-real-value-123", "cc_placeholder_0001"))
    event = b'data: {"delta": "sk-real-value-123 and more"}\n\n'
    assert scrubber.feed(event) == b'data: {"delta": "cc_placeholder_0001 and more"}\n\n'
    assert scrubber.held == 0
    assert scrubber.feed(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"


def test_no_pairs_is_a_pass_through() -> None:
    scrubber = Scrubber([])
    chunk = b"abc" * 10
    assert scrubber.feed(chunk) is chunk
    assert scrubber.flush() == b""
    assert scrub_bytes(chunk, []) is chunk
    assert scrub_text("abc", []) == "abc"


def test_chunk_without_match_or_partial_is_returned_as_is() -> None:
    scrubber = Scrubber(PAIRS)
    chunk = b"nothing to see\n"
    assert scrubber.feed(chunk) is chunk


def test_empty_needle_is_refused() -> None:
    with pytest.raises(ValueError, match="empty needle"):
        Scrubber([(b"", b"x")])


def test_first_pair_wins_for_equal_needles() -> None:
    assert scrub_bytes(b"-tok-", [(b"tok", b"A"), (b"tok", b"B")]) == b"-A-"


def test_scrubber_is_reusable_after_flush() -> None:
    scrubber = Scrubber(PAIRS)
    assert scrubber.feed(b"ab") == b""
    assert scrubber.flush() == b"ab"
    assert scrubber.feed(b"cd") == b"cd"


def test_scrub_text_keeps_undecodable_bytes() -> None:
    text = b"\xff tok \xc3".decode("utf-8", "surrogateescape")
    assert scrub_text(text, [(b"tok", b"PH")]) == b"\xff PH \xc3".decode("utf-8", "surrogateescape")
    assert scrub_text("\ud800 tok é", [(b"tok", b"PH")]) == "\ud800 PH é"


def test_contains_any() -> None:
    assert contains_any(b"xx tok yy", [b"nope", b"tok"])
    assert not contains_any(b"xx yy", [b"nope", b""])
    assert not contains_any(b"xx", [])


def test_deep_tries_fall_back_to_a_flat_alternation() -> None:
    pairs = [(b"a" * k, b"<%d>" % k) for k in range(1, 800)]
    assert not _Table(tuple(pairs)).regex.pattern.startswith(b"a(?:")  # not the trie
    assert scrub_bytes(b"b" + b"a" * 1000 + b"b", pairs) == b"b<799><201>b"
    scrubber = Scrubber(pairs)
    out = b"".join(scrubber.feed(b"a" * 100) for _ in range(10)) + scrubber.flush()
    assert out == b"<799><201>"


def test_large_stream_holds_little() -> None:
    scrubber = Scrubber(paired_forms("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "cc_x" * 10))
    body = (b"ABCDEFGHIJ" * 6553 + b"\n") * 16
    out = []
    for i in range(0, len(body), 65536):
        out.append(scrubber.feed(body[i : i + 65536]))
        assert scrubber.held < 200
    assert b"".join(out) + scrubber.flush() == body


# --- properties -------------------------------------------------------------------------------

alphabet = b"abc"
needles = st.binary(min_size=1, max_size=6).map(lambda b: bytes(alphabet[x % 3] for x in b))
# replacements from bytes no needle uses, so the output can't form a needle by coincidence
replacements = st.binary(max_size=4).map(lambda b: bytes(b"XYZ"[x % 3] for x in b))
pair_lists = st.lists(st.tuples(needles, replacements), min_size=1, max_size=6)
datas = st.binary(max_size=80).map(lambda b: bytes(b"abcd\n"[x % 5] for x in b))


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(deadline=None)
@given(pair_lists, datas, st.lists(st.integers(0, 10_000), max_size=10))
def test_any_chunking_gives_the_whole_result(pairs: Pairs, data: bytes, cuts: list[int]) -> None:
    scrubber = Scrubber(pairs)
    out = b"".join(scrubber.feed(chunk) for chunk in _chunked(data, cuts))
    assert out + scrubber.flush() == scrub_bytes(data, pairs)
    assert scrubber.held == 0


@settings(deadline=None)
@given(pair_lists, datas)
def test_output_has_no_needle(pairs: Pairs, data: bytes) -> None:
    out = scrub_bytes(data, pairs)
    assert not contains_any(out, [n for n, _ in pairs])


@settings(deadline=None)
@given(pair_lists, datas)
def test_nothing_is_held_without_a_partial_tail(pairs: Pairs, data: bytes) -> None:
    partial = any(
        data.endswith(n[:k]) for n, _ in pairs for k in range(1, len(n)) if len(data) >= k
    )
    scrubber = Scrubber(pairs)
    forwarded = scrubber.feed(data)
    if not partial:
        assert scrubber.held == 0
        assert forwarded == scrub_bytes(data, pairs)
    else:
        assert scrubber.held < max(len(n) for n, _ in pairs)


@settings(deadline=None)
@given(
    st.binary(min_size=8, max_size=40).map(lambda b: bytes(97 + x % 26 for x in b)),
    st.binary(max_size=200),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
)
def test_inserted_needle_split_anywhere_is_replaced(
    token: bytes, noise: bytes, where: int, split: int
) -> None:
    noise = noise.replace(token[:1], b"")  # the token can't start inside the noise
    at = where % (len(noise) + 1)
    data = noise[:at] + token + noise[at:]
    cut = split % (len(data) + 1)
    scrubber = Scrubber([(token, b"<PH>")])
    out = scrubber.feed(data[:cut]) + scrubber.feed(data[cut:]) + scrubber.flush()
    assert out == noise[:at] + b"<PH>" + noise[at:]


@settings(deadline=None)
@given(pair_lists, datas)
def test_trie_and_flat_patterns_agree(pairs: Pairs, data: bytes) -> None:
    table = _Table(tuple(pairs))
    flat = _compile_regex(table, list(table.replacements), trie=False)
    trie = _compile_regex(table, list(table.replacements))
    assert [m.span() for m in trie.finditer(data)] == [m.span() for m in flat.finditer(data)]


@given(pair_lists, datas)
def test_leftmost_longest_reference(pairs: Pairs, data: bytes) -> None:
    """A slow, obviously right scan gives the same result."""
    table = dict(reversed(pairs))  # first pair wins
    out, i = b"", 0
    while i < len(data):
        hit = max((n for n in table if data.startswith(n, i)), key=len, default=None)
        if hit is None:
            out, i = out + data[i : i + 1], i + 1
        else:
            out, i = out + table[hit], i + len(hit)
    assert scrub_bytes(data, pairs) == out
