from __future__ import annotations

import base64
import json
from itertools import accumulate

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from proxy.forms import paired_forms
from proxy.scrub import Detector, Scrubber, contains_any, found_in, scrub_bytes, scrub_text
from tests.proxy.test_spellings import spelled, values

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


def test_the_carry_is_the_window_until_a_line_break_that_no_value_spans() -> None:
    scrubber = Scrubber([(b"secret-token", b"PH")])
    assert scrubber.feed(b"data: sec") == b""
    assert scrubber.held == 9  # shorter than the window: all of it, like a value or not
    assert scrubber.feed(b"ret-tok") == b""
    assert scrubber.held == 16
    assert scrubber.feed(b"en\n\n") == b"data: PH\n\n"
    assert scrubber.held == 0
    assert scrubber.flush() == b""


def test_a_partial_match_that_fails_goes_out_with_the_line() -> None:
    scrubber = Scrubber([(b"secret-token", b"PH")])
    assert scrubber.feed(b"a secret-to") == b""
    assert scrubber.feed(b"y and more.\n") == b"a secret-toy and more.\n"
    assert scrubber.held == 0


def test_the_window_is_the_longest_spelling_less_one() -> None:
    scrubber = Scrubber([(b"aab", b"X")])
    window = 3 * len(rb"\u005c\u0075\u0030\u0030\u0036\u0031") - 1  # "a" escaped twice
    chunk = b"z" * (window + 5) + b"aa"
    assert scrubber.feed(chunk) == chunk[:7]
    assert scrubber.held == window
    assert scrubber.feed(b"b") == b"z"  # one byte more in, one out
    assert scrubber.flush() == b"z" * (window - 3) + b"X"


def test_a_line_break_inside_base64_is_not_a_break() -> None:
    """A base64 spelling may be wrapped: a line ending in a base64 character is held."""
    scrubber = Scrubber([(b"secret-token", b"PH")])
    assert scrubber.feed(b"abc\n") == b""
    assert scrubber.feed(b"abc\r\n") == b""
    assert scrubber.feed(b'abc"\r\n') == b'abc\nabc\r\nabc"\r\n'


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


def test_chunk_that_ends_at_a_break_without_a_match_is_returned_as_is() -> None:
    scrubber = Scrubber(PAIRS)
    chunk = b"nothing to see.\n"
    assert scrubber.feed(chunk) is chunk


def test_empty_value_is_refused() -> None:
    with pytest.raises(ValueError, match="empty value"):
        Scrubber([(b"", b"x")])


def test_first_pair_wins_for_equal_needles() -> None:
    assert scrub_bytes(b"-tok-", [(b"tok", b"A"), (b"tok", b"B")]) == b"-A-"


def test_scrubber_is_reusable_after_flush() -> None:
    scrubber = Scrubber(PAIRS)
    assert scrubber.feed(b"ab") == b""
    assert scrubber.flush() == b"ab"
    assert scrubber.feed(b"cd}\n") == b"cd}\n"


def test_scrub_text_keeps_undecodable_bytes() -> None:
    text = b"\xff tok \xc3".decode("utf-8", "surrogateescape")
    assert scrub_text(text, [(b"tok", b"PH")]) == b"\xff PH \xc3".decode("utf-8", "surrogateescape")
    assert scrub_text("\ud800 tok é", [(b"tok", b"PH")]) == "\ud800 PH é"


def test_contains_any() -> None:
    assert contains_any(b"xx tok yy", [b"nope", b"tok"])
    assert not contains_any(b"xx yy", [b"nope", b""])
    assert not contains_any(b"xx", [])


def test_large_stream_holds_at_most_the_window() -> None:
    real = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    scrubber = Scrubber(paired_forms(real, "cc_x" * 10))
    body = (b"ABCDEFGHIJ" * 6553 + b"\n") * 16
    out = []
    for i in range(0, len(body), 65536):
        out.append(scrubber.feed(body[i : i + 65536]))
        assert scrubber.held == 36 * len(real) - 1  # each character escaped twice, as \u005c...
    assert b"".join(out) + scrubber.flush() == body


# --- properties -------------------------------------------------------------------------------

alphabet = b"abc"
needles = st.binary(min_size=1, max_size=6).map(lambda b: bytes(alphabet[x % 3] for x in b))
# replacements (never empty, as placeholders) from bytes no needle uses, so the output can't
# form a needle by coincidence
replacements = st.binary(min_size=1, max_size=4).map(lambda b: bytes(b"XYZ"[x % 3] for x in b))
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


def _hits(data: bytes, needles: list[bytes]) -> list[tuple[int, int]]:
    """Where a slow, obviously right leftmost-longest scan finds a needle."""
    out, i = [], 0
    while i < len(data):
        hit = max((n for n in needles if data.startswith(n, i)), key=len, default=b"")
        out += [(i, i + len(hit))] if hit else []
        i += len(hit) or 1
    return out


@settings(deadline=None)
@given(pair_lists, datas)
def test_what_is_held_is_fixed_by_length_and_line_breaks(pairs: Pairs, data: bytes) -> None:
    """Held: the window (or less after a blank line), never what looks like a needle; only a
    whole needle that starts before the held tail and ends inside it goes out (replaced)."""
    scrubber = Scrubber(pairs)
    scrubber.feed(data)
    window = max(36 * len(n) for n, _ in pairs) - 1  # [abc]: at most 36 bytes a character
    blank = [i + 1 for i in range(1, len(data)) if data[i - 1 : i + 1] == b"\n\n"]
    release = max([len(data) - window, *blank, 0])
    ends = [e for s, e in _hits(data, [n for n, _ in pairs]) if s < release < e]
    assert scrubber.held == len(data) - max([release, *ends])


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


# --- by meaning: escaped spellings --------------------------------------------------------------

REAL = "sk-live/4f+é"
PH = "ccph_0123456789abcdefghijKLMNOP"
SK_PAIRS = tuple(paired_forms(REAL, PH))

ESCAPED = {
    "every char \\u, lower hex": "".join(f"\\u{ord(c):04x}" for c in REAL),
    "every char \\u, upper hex": "".join(f"\\u{ord(c):04X}" for c in REAL),
    "some chars escaped": "sk\\u002dlive\\/4f\\u002b\\u00e9",
    "go html style": "s\\u006b-live/4f+\\u00e9",
    "json in json": "\\\\u0073k-live\\\\/4f+\\\\u00e9",
    "percent, mixed case and unescaped": "sk%2dlive%2F4f%2b%c3%A9",
    "url-encoded json": "%5Cu0073k-live/4f+%5Cu00e9",
    "double percent": "%2573k-live%252F4f%252B%25C3%25A9",
}


@pytest.mark.parametrize("spelling", ESCAPED.values(), ids=ESCAPED.keys())
def test_an_escaped_value_in_json_becomes_the_placeholder(spelling: str) -> None:
    body = ('{"echo": "' + spelling + '", "n": 1}').encode()
    scrubbed = scrub_bytes(body, SK_PAIRS)
    assert scrubbed == ('{"echo": "' + PH + '", "n": 1}').encode()
    assert json.loads(scrubbed) == {"echo": PH, "n": 1}
    for cut in range(len(body) + 1):  # every boundary, inside each escape included
        scrubber = Scrubber(SK_PAIRS)
        assert scrubber.feed(body[:cut]) + scrubber.feed(body[cut:]) + scrubber.flush() == scrubbed


def test_a_boundary_inside_an_escape_is_held_like_any_other() -> None:
    scrubber = Scrubber(SK_PAIRS)
    assert scrubber.feed(b'{"echo": "\\u00') == b""
    assert scrubber.feed(b"73\\u006B-live/4f+\\u00") == b""
    assert scrubber.feed(b'e9", "n": 1}\n') == ('{"echo": "' + PH + '", "n": 1}\n').encode()
    assert scrubber.held == 0


def test_json_escaped_text_without_the_value_passes_at_once() -> None:
    scrubber = Scrubber(SK_PAIRS)
    event = b'data: {"delta": "\\u003cb\\u003e sk-test \\u00e9 %41"}\n\n'
    assert scrubber.feed(event) is event
    assert scrubber.held == 0


def test_found_in_sees_escaped_spellings() -> None:
    assert found_in(b"x: \\u0073k-live\\/4f+%C3%A9", SK_PAIRS)
    assert not found_in(b"x: sk-live/4f+e", SK_PAIRS)


@pytest.mark.parametrize(
    ("real", "body", "expected"),
    [
        ("%25", b"[%25]", b"[PH]"),  # the raw value, not "%" escaped as %25 and a stray "5"
        ("%25", b"[%2525]", b"[PH]"),
        ("a%b", b"[a%25b]", b"[PH]"),
        ("C:\\x", b"[C:\\\\x]", b"[PH]"),  # JSON-escaped backslash
        ("C:\\x", b"[C:\\x]", b"[PH]"),
        ("C:\\x", b"[C:\\u005cx]", b"[PH]"),
    ],
    ids=[
        "percent raw",
        "percent escaped",
        "percent in the middle",
        "backslash json",
        "raw",
        "backslash as u005c",
    ],
)
def test_values_with_percent_and_backslash(real: str, body: bytes, expected: bytes) -> None:
    pairs = paired_forms(real, "PH")
    assert scrub_bytes(body, pairs) == expected
    for cut in range(len(body) + 1):
        scrubber = Scrubber(pairs)
        assert scrubber.feed(body[:cut]) + scrubber.feed(body[cut:]) + scrubber.flush() == expected


def test_a_long_value_fully_escaped_is_replaced() -> None:
    real = "eyJhbGciOiJSUzI1NiJ9." + "QWxhZGRpbjpvcGVuIHNlc2FtZQ" * 60 + ".sig-_x"  # JWT-sized
    escaped = "".join(f"\\u{ord(c):04x}" for c in real).encode()
    body = b'{"token": "' + escaped + b'"}'
    pairs = paired_forms(real, PH)
    assert json.loads(scrub_bytes(body, pairs)) == {"token": PH}
    scrubber = Scrubber(pairs)
    out = b"".join(scrubber.feed(body[i : i + 1000]) for i in range(0, len(body), 1000))
    assert json.loads(out + scrubber.flush()) == {"token": PH}


AROUND = st.text("~!", max_size=4)


@settings(deadline=None, max_examples=80)
@given(st.data(), values, AROUND, AROUND, st.lists(st.integers(0, 10_000), max_size=6))
def test_any_spelling_split_anywhere_becomes_the_placeholder(
    data: st.DataObject, real: str, before: str, after: str, cuts: list[int]
) -> None:
    """A value in any mix of spellings, in any chunking: the placeholder, and nothing else
    changes."""
    pairs = paired_forms(real, PH)
    body = before.encode() + data.draw(spelled(real)) + after.encode()
    expected = (before + PH + after).encode()
    assert scrub_bytes(body, pairs) == expected
    scrubber = Scrubber(pairs)
    out = b"".join(scrubber.feed(chunk) for chunk in _chunked(body, cuts))
    assert out + scrubber.flush() == expected


JSON_CHARS = st.sampled_from(list('aZ09-_./+= %"\\<>&é€😀'))


@settings(deadline=None, max_examples=60)
@given(st.text(JSON_CHARS, max_size=10), st.integers(0, 3), st.booleans())
def test_a_value_in_a_json_document_in_any_escaping_leaves_valid_json(
    middle: str, style: int, ascii_only: bool
) -> None:
    real = "Z" + middle + "Z"  # "Z" is nowhere else in the document
    document = {"k": [1, "x~"], "echo": real, "z": "~"}
    text = json.dumps(document, ensure_ascii=ascii_only)
    if style == 1:  # Go: <, >, & escaped
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    elif style == 2:  # PHP: / escaped
        text = text.replace("/", "\\/")
    elif style == 3:  # the document as a string inside another
        text = json.dumps({"doc": text})
    scrubbed = json.loads(scrub_bytes(text.encode(), paired_forms(real, PH)))
    if style == 3:
        scrubbed = json.loads(scrubbed["doc"])
    assert scrubbed == {**document, "echo": PH}


def test_wrapped_base64_split_anywhere_loses_the_value() -> None:
    real = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    pairs = paired_forms(real, PH)
    body = base64.encodebytes(b"x" * 50 + b"user:" + real.encode()).replace(b"\n", b"\r\n")
    whole = scrub_bytes(body, pairs)
    assert real.encode()[2:-2] not in base64.b64decode(whole)  # the edges carry a few bits
    for cut in range(len(body) + 1):
        scrubber = Scrubber(pairs)
        assert scrubber.feed(body[:cut]) + scrubber.feed(body[cut:]) + scrubber.flush() == whole


# --- no timing oracle: what is held back never says whether data ends like a value ---------------

BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_"
TOKENS = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8, max_size=24)
# Bytes that can't continue any spelling of a TOKEN (no letter, digit, "\\", "%", base64
# character), line breaks included: what comes after a guess, the same for both guesses.
NOISE = st.binary(max_size=60).map(lambda b: bytes(b" .,:;!{}[]~\r\n"[x % 13] for x in b))


@st.composite
def spellings(draw: st.DrawFn, real: str) -> bytes:
    """``real`` spelled as a response might hold it: escaped (up to two layers), or in base64
    at any alignment."""
    if draw(st.booleans()):
        return draw(spelled(real))
    pad = b"u" * draw(st.integers(0, 2))
    encode = draw(st.sampled_from([base64.b64encode, base64.urlsafe_b64encode]))
    return encode(pad + real.encode())


@settings(deadline=None, max_examples=150)
@given(st.data(), TOKENS, NOISE, st.lists(NOISE, max_size=3))
def test_what_goes_out_after_each_chunk_is_the_same_for_a_right_and_a_wrong_guess(
    data: st.DataObject, real: str, before: bytes, later: list[bytes]
) -> None:
    """Two streams that differ only in whether a chunk ends with the start of the value (in
    any spelling) or with a wrong last byte: after each chunk, as much goes out and as much is
    held back."""
    spelling = data.draw(spellings(real))
    right = spelling[: data.draw(st.integers(1, len(spelling) - 1))]
    pairs = paired_forms(real, PH)
    assume(not found_in(right, pairs))  # a base64 run is whole before the end of its spelling
    # The same kind of byte (whether a base64 spelling can end with it, before a line break):
    # the job knows which kind it sent; what it must not learn is whether it was right.
    last = right[-1:]
    wrong = right[:-1] + (b"~" if last not in BASE64 else b"Q" if last != b"Q" else b"R")
    seen = []
    for guess in (right, wrong):
        scrubber = Scrubber(pairs)
        out = [scrubber.feed(chunk) for chunk in (before + guess, *later)] + [scrubber.flush()]
        seen.append([len(piece) for piece in out])
        assert b"".join(out) == before + guess + b"".join(later)  # nothing to replace
    assert seen[0] == seen[1]


@settings(deadline=None, max_examples=100)
@given(st.data(), TOKENS, NOISE, NOISE, st.lists(st.integers(0, 10_000), max_size=6))
def test_the_detector_says_when_a_whole_value_has_arrived_split_anywhere(
    data: st.DataObject, real: str, before: bytes, after: bytes, cuts: list[int]
) -> None:
    """After each chunk: whether all the data so far holds a whole value (a base64 run may be
    whole before its spelling ends)."""
    body = before + data.draw(spellings(real)) + after
    pairs = paired_forms(real, PH)
    chunks = _chunked(body, cuts)
    detector = Detector(pairs)
    said = [detector.feed(chunk) for chunk in chunks]
    whole = [found_in(body[:end], pairs) for end in accumulate(len(c) for c in chunks)]
    first = whole.index(True)
    assert said[: first + 1] == whole[: first + 1]


def test_the_detector_sees_a_short_value_inside_a_longer_ones_start() -> None:
    detector = Detector([(b"xyzw-long-one", b"A"), (b"yz-short", b"B")])
    assert detector.feed(b"... xyz-short") is True
