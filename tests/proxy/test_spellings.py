"""Spellings of a value: every way a client decodes back to it is in its language."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.patterns import cat, pattern
from proxy.spellings import Language, languages, render

SHORT = {'"': b'\\"', "\\": b"\\\\", "/": b"\\/", "\b": b"\\b", "\f": b"\\f", "\t": b"\\t"}
# Characters a value may hold (CR and LF are refused by the vault); "~" and "!" stay out, so
# that tests can surround a value with them.
VALUE_CHARS = st.sampled_from(list("aZ09-_./+= %\\\"<>&'é€😀\t") + ["\u2028"])
values = st.text(VALUE_CHARS, min_size=1, max_size=12)


def _hex(n: int, width: int, upper: list[bool]) -> bytes:
    digits = f"{n:0{width}x}"
    return "".join(d.upper() if u else d for d, u in zip(digits, upper, strict=False)).encode()


@st.composite
def spelled_once(draw: st.DrawFn, ch: str) -> bytes:
    """``ch`` as itself or with one layer of JSON or percent escaping (a reference encoder,
    written from the JSON and URL specifications, not from the code under test)."""
    raw = ch.encode()
    kinds = ["raw", "json", "percent"] + (["short"] if ch in SHORT else [])
    kinds += ["plus"] if ch == " " else []
    kind = draw(st.sampled_from(kinds))
    if kind == "raw":
        return raw
    if kind == "short":
        return SHORT[ch]
    if kind == "plus":
        return b"+"
    if kind == "json":
        units = ch.encode("utf-16-be")
        out = b""
        for i in range(0, len(units), 2):
            unit = int.from_bytes(units[i : i + 2], "big")
            out += b"\\u" + _hex(unit, 4, draw(st.lists(st.booleans(), min_size=4, max_size=4)))
        return out
    out = b""
    for byte in raw:  # any byte of a UTF-8 sequence escaped or not
        if draw(st.booleans()):
            out += b"%" + _hex(byte, 2, draw(st.lists(st.booleans(), min_size=2, max_size=2)))
        else:
            out += bytes((byte,))
    return out


@st.composite
def outer(draw: st.DrawFn, char: int, layer: str) -> bytes:
    """One character of an escape as an outer JSON string or URL writes it."""
    kinds = ["raw", "escaped"] if layer == "url" or chr(char) not in '\\"' else ["escaped"]
    if draw(st.sampled_from(kinds)) == "raw":
        return bytes((char,))
    if layer == "url":
        return b"%" + _hex(char, 2, draw(st.lists(st.booleans(), min_size=2, max_size=2)))
    if chr(char) in SHORT and draw(st.booleans()):
        return SHORT[chr(char)]
    return b"\\u" + _hex(char, 4, draw(st.lists(st.booleans(), min_size=4, max_size=4)))


@st.composite
def spelled(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with each character spelled with up to two layers of escaping: a second layer
    escapes the characters of the first as one outer encoder (JSON or URL) does; any mix from
    one character to the next."""
    out = b""
    for ch in text:
        inner = draw(spelled_once(ch))
        if inner != ch.encode() and draw(st.booleans()):
            layer = draw(st.sampled_from(["json", "url"]))
            inner = b"".join(draw(outer(b, layer)) if b < 0x80 else bytes((b,)) for b in inner)
        out += inner
    return out


def _own(text: str) -> re.Pattern[bytes]:
    [own, *_] = languages(text)
    node = cat(*own.units)
    assert node is not None
    return re.compile(pattern(node))


@settings(deadline=None, max_examples=60)
@given(st.data(), values)
def test_every_spelling_is_in_the_language(data: st.DataObject, text: str) -> None:
    assert _own(text).fullmatch(data.draw(spelled(text)))


def test_plain_is_the_language_without_u_and_percent_escapes() -> None:
    [own, *_] = languages("a/b")
    full, plain = (re.compile(pattern(cat(*u) or own.units[0])) for u in (own.units, own.plain))
    for spelling in (b"a/b", b"a\\/b", b"a\\\\/b", b"a\\\\\\/b"):
        assert full.fullmatch(spelling) and plain.fullmatch(spelling)
    for spelling in (b"\\u0061/b", b"a%2Fb", b"a\\u002fb", b"%61/b"):
        assert full.fullmatch(spelling) and not plain.fullmatch(spelling)


CASES = {
    "raw": b"sk/\xc3\xa9",
    "every char \\u": b"\\u0073\\u006b\\u002f\\u00e9",
    "upper hex": b"\\u0073\\u006B\\u002F\\u00E9",
    "mixed hex case in one escape": b"\\u006b".replace(b"b", b"B").join([b"s", b"/\\u00e9"]),
    "slash escaped": b"sk\\/\xc3\xa9",
    "go html style": b"s\\u006b\\u002f\\u00e9",
    "percent every byte": b"%73%6b%2F%C3%A9",
    "percent half a utf-8 char": b"sk/%c3\xa9",
    "json in json": b"\\\\u0073k\\\\/\\\\u00e9",
    "json in json, backslash escaped as \\u005c": b"\\u005cu0073k/\\u005cu00e9",
    "url-encoded json": b"%5Cu0073k%5C/%5Cu00e9",
    "percent inside json": b"\\u002573k/\\u0025C3\\u0025A9",
    "double percent": b"%2573k%252F%25c3%25a9",
}


@pytest.mark.parametrize("spelling", CASES.values(), ids=CASES.keys())
def test_named_spellings(spelling: bytes) -> None:
    assert _own("sk/é").fullmatch(spelling)


def test_surrogate_pair_for_a_character_outside_the_bmp() -> None:
    pattern_ = _own("a😀")
    assert pattern_.fullmatch(b"a\\ud83d\\ude00")
    assert pattern_.fullmatch(b"a\\uD83D\\uDE00")
    assert pattern_.fullmatch("a😀".encode())
    assert not pattern_.fullmatch(b"a\\ud83d")


def test_space_as_plus_and_escapes_of_control_characters() -> None:
    assert _own("a b").fullmatch(b"a+b")
    assert _own("a b").fullmatch(b"a%2Bb")  # "+" escaped once more: decoded twice, a space
    assert _own("a\tb").fullmatch(b"a\\tb")
    assert _own("a\tb").fullmatch(b"a\\u0009b")


def test_not_in_the_language() -> None:
    own = _own("sk/é")
    for spelling in (b"sk/e", b"\\u0073k/\\u00e8", b"%73k/%C3", b"\\x73k/\xc3\xa9", b"SK/\xc3\xa9"):
        assert not own.fullmatch(spelling), spelling


# --- base64 -----------------------------------------------------------------------------------


def _runs(text: str) -> list[re.Pattern[bytes]]:
    out = []
    for language in languages(text)[1:]:
        node = cat(*language.units)
        assert node is not None
        out.append(re.compile(pattern(node)))
    return out


def test_short_values_have_no_base64_runs() -> None:
    assert len(languages("12345")) == 1
    assert len(languages("123456")) == 4  # three alignments


TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a/+x"


def _found(runs: list[re.Pattern[bytes]], data: bytes) -> bool:
    return any(run.search(data) for run in runs)


BASE64 = {
    "standard": base64.b64encode(TOKEN.encode()),
    "url-safe": base64.urlsafe_b64encode(TOKEN.encode()),
    "basic credential": base64.b64encode(b"user:" + TOKEN.encode()),
    "unpadded": base64.b64encode(b"xy" + TOKEN.encode()).rstrip(b"="),
    "mime lines": base64.encodebytes(b"x" * 60 + TOKEN.encode()).replace(b"\n", b"\r\n"),
    "pem lines": b"\n".join(
        base64.b64encode(b"x" * 40 + TOKEN.encode())[i : i + 64] for i in range(0, 120, 64)
    ),
    "in json, slash escaped": json.dumps(base64.b64encode(TOKEN.encode()).decode())
    .replace("/", "\\/")
    .encode(),
    "in json, lines as \\n": json.dumps(
        base64.encodebytes(b"x" * 60 + TOKEN.encode()).decode()
    ).encode(),
    "in json in json": json.dumps(json.dumps(base64.b64encode(TOKEN.encode()).decode()))
    .replace("/", "\\\\\\/")
    .encode(),
    "percent-encoded": quote(base64.b64encode(TOKEN.encode()).decode(), safe="").encode(),
    "\\u-escaped +": base64.b64encode(TOKEN.encode()).replace(b"+", b"\\u002B"),
    "every char \\u-escaped": b"".join(
        b"\\u%04x" % c for c in base64.b64encode(b"ab" + TOKEN.encode())
    ),
    "mixed alphabets": base64.b64encode(TOKEN.encode()).replace(b"+", b"-", 1),
    "of the json-escaped value": base64.b64encode(json.dumps({"t": TOKEN}).encode()),
    "of json with \\/": base64.b64encode(json.dumps({"t": TOKEN}).replace("/", "\\/").encode()),
}


@pytest.mark.parametrize("data", BASE64.values(), ids=BASE64.keys())
def test_base64_spellings(data: bytes) -> None:
    assert _found(_runs(TOKEN), data)


# --- rendering --------------------------------------------------------------------------------

PH = "ccph_0123456789abcdefghijKLMNOP"


@pytest.mark.parametrize("spelling", CASES.values(), ids=CASES.keys())
def test_an_escaped_occurrence_becomes_the_bare_placeholder(spelling: bytes) -> None:
    [own, *_] = languages("sk/é")
    assert render(own, spelling, "sk/é", PH) == PH.encode()


def test_a_uniform_form_keeps_its_form() -> None:
    [own, *_] = languages("a/b é")
    placeholder = "PH/1 ü"
    assert render(own, b"a\\/b \\u00e9", "a/b é", placeholder) == b"PH\\/1 \\u00fc"
    assert render(own, b"a%2Fb+%C3%A9", "a/b é", placeholder) == b"PH%2F1+%C3%BC"
    # a mix that no whole-value encoder writes: JSON-escaped (valid in a JSON string)
    assert render(own, b"\\u0061/b \\u00E9", "a/b é", placeholder) == b"PH/1 \\u00fc"
    assert render(own, b"%61/b \xc3\xa9", "a/b é", placeholder) == b"PH%2F1%20%C3%BC"


def _run_language(text: str, offset: int) -> Language:
    return next(lang for lang in languages(text) if lang.base64 == (0, offset))


def test_a_base64_occurrence_becomes_the_placeholder_run_in_its_alphabet() -> None:
    real, placeholder = "ghp_realvalue1??", "cc_placeholde??"
    language = _run_language(real, 0)
    standard = base64.b64encode(real.encode())[:20]
    rendered = render(language, standard, real, placeholder)
    assert rendered in base64.b64encode(placeholder.encode())
    url = base64.urlsafe_b64encode(real.encode())[:20]
    assert b"_" in url
    assert render(language, url, real, placeholder) in base64.urlsafe_b64encode(
        placeholder.encode()
    )
    assert (
        render(language, quote(standard, safe="").encode(), real, placeholder)
        == quote(rendered, safe="").encode()
    )
