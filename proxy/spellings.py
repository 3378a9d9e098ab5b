"""Every spelling of a value that a client decodes back to it, as languages to scrub. Pure.

A JSON parser reads ``\\u0073\\u006B`` as ``sk``; ``unquote`` reads ``s%6b`` as ``sk``; a base64
decoder skips line breaks. So the scrubber matches a value by meaning, character by character,
not by one spelling of the whole. For each character of the value, :func:`languages` allows:

- the character itself (UTF-8);
- its JSON escapes: ``\\uXXXX`` with either case of hex in each digit, a surrogate pair for a
  character outside the BMP, and the short escapes ``\\"``, ``\\\\``, ``\\/``, ``\\b``, ``\\f``,
  ``\\n``, ``\\r``, ``\\t``;
- its percent-encoding, byte by byte (``%C3%A9``, ``%c3\\xa9``: any byte of a UTF-8 sequence may
  be escaped or not), either case of hex; ``+`` for a space;
- two layers: the characters of an escape escaped once more, the way one outer encoder does
  it, as JSON inside a JSON string (``\\\\u0073``, ``\\u005cu0073``), a URL-encoded JSON
  value (``%5Cu0073``), a JSON string holding a URL (``\\u002573``) or a double-encoded URL
  (``%2573``);

with any mix from one character of the value to the next.

Base64 (:func:`proxy.forms.core`): for each alignment, the run of base64 characters that the
value determines on its own (so padding and neighbours don't matter), in either alphabet and any
mix of the two (lenient decoders take both), with a line break allowed between any two
characters (MIME and PEM wrapping: CRLF or LF, raw or as the JSON escapes ``\\r\\n``, ``\\n``),
each character possibly JSON- or percent-escaped once (``+`` ``/`` ``-`` ``_`` twice:
``\\\\/``, ``%252F``). These runs are taken of the value, of its JSON escaping and of that with
``\\/`` (base64 of a JSON document holding the value), if at least 6 bytes long.

Each language also has a *plain* variant without any ``\\u`` or ``%`` escape: every spelling
left out of it contains ``\\u`` or ``%``, so data without either can be matched with the plain
one, which is much smaller (the common case: see :mod:`proxy.scrub`).

Replacement (:func:`render`). An occurrence in one of the uniform forms of
:func:`proxy.forms.forms` (raw, a JSON variant, JSON in JSON, a percent variant) becomes the
placeholder in that same form. Any other mix becomes the placeholder JSON-escaped (ASCII only)
if the occurrence has a backslash, else percent-encoded if it has a ``%``, else raw. A base64
occurrence becomes the placeholder's run for the same alignment and alphabet, percent-encoded if
the occurrence had a ``%``. Minted placeholders are ``[A-Za-z0-9_-]``, which none of these
escape: in practice an escaped occurrence becomes the bare placeholder, which is valid inside a
JSON string (once or twice escaped), a URL and HTML, and decodes to the placeholder in each.

An occurrence that starts right after a lone backslash or inside an escape sequence (the raw
value happens to follow ``\\n``, say) is replaced all the same: nothing leaks, but the escape
before it may no longer parse.

Knowingly not covered: three or more layers of escaping, or one escape whose characters two
different outer encoders escaped (``\\u005c%75...``); encodings not listed here (HTML
character references such as ``&#115;``, UTF-16 or other non-UTF-8 bodies, quoted-printable);
text changed beyond encoding (reversed, XOR-ed, other characters between those of the value,
junk between base64 characters, base64 of a percent-encoded value); base64 runs shorter than 6
bytes, and the first and last few bits of a value inside base64 (see :mod:`proxy.forms`). Most
of these take an upstream that means to hand the credential over, and such an upstream always
can (README, "Not protected"); a careless one that answers in UTF-16 would get an echoed value
through, which is rare enough to leave for now.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from proxy.forms import core, same_form
from proxy.patterns import END, Alt, Lit, Node, alt, cat, lits, opt

_MIN_BASE64 = 6
_SHORT = {
    '"': b'\\"',
    "\\": b"\\\\",
    "/": b"\\/",
    "\b": b"\\b",
    "\f": b"\\f",
    "\n": b"\\n",
    "\r": b"\\r",
    "\t": b"\\t",
}
_RAW_BYTES = range(0xDC80, 0xDD00)  # how surrogateescape spells a byte that isn't UTF-8
_GAPS = (b"\r\n", b"\n", b"\\r\\n", b"\\n")
_B64_TEXTS = (
    lambda t: t,
    lambda t: json.dumps(t)[1:-1],
    lambda t: json.dumps(t)[1:-1].replace("/", "\\/"),
)


@dataclass(frozen=True)
class Language:
    """The spellings of one value (``text`` in UTF-8) or of one of its base64 runs."""

    units: tuple[Node, ...]  # every spelling, one unit per character of the meaning
    plain: tuple[Node, ...]  # the same without any ``\\u`` or ``%`` escape
    base64: tuple[int, int] | None = None  # (text form, alignment) of a base64 run


def _hex(value: int, width: int) -> list[Node]:
    """Hex digits, a letter in either case."""
    return [lits((d.encode(), d.upper().encode())) or Lit(d.encode()) for d in f"{value:0{width}x}"]


def _json_escapes(code: int, full: bool) -> list[list[Node]]:
    """The JSON escapes of one code point, each a list of one-character nodes."""
    out: list[list[Node]] = []
    short = _SHORT.get(chr(code))
    if short:
        out.append([Lit(bytes((b,))) for b in short])
    if full:
        if code > 0xFFFF:
            hi, lo = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            out.append([Lit(b"\\"), Lit(b"u"), *_hex(hi, 4), Lit(b"\\"), Lit(b"u"), *_hex(lo, 4)])
        else:
            out.append([Lit(b"\\"), Lit(b"u"), *_hex(code, 4)])
    return out


@lru_cache(maxsize=512)
def _once(char: Node, full: bool) -> Node:
    """One ASCII character (or a choice of them) as itself or escaped once."""
    if isinstance(char, Alt):
        return alt(*(_once(c, full) for c in char.items)) or char
    assert isinstance(char, Lit)
    options: list[Node | None] = [cat(*escape) for escape in _json_escapes(char.data[0], full)]
    if full:
        options.append(cat(Lit(b"%"), *_hex(char.data[0], 2)))
    return alt(*options, char) or char


@lru_cache(maxsize=512)
def _in_json(char: Node, full: bool) -> Node | None:
    """One ASCII character of an escape as a JSON string holds it: itself (unless it must be
    escaped) or escaped."""
    if isinstance(char, Alt):
        return alt(*(_in_json(c, full) for c in char.items))
    assert isinstance(char, Lit)
    options: list[Node | None] = [cat(*escape) for escape in _json_escapes(char.data[0], full)]
    return alt(*options, None if char.data in (b"\\", b'"') else char)


@lru_cache(maxsize=512)
def _in_url(char: Node) -> Node | None:
    """One ASCII character of an escape as a URL holds it: itself or percent-encoded."""
    if isinstance(char, Alt):
        return alt(*(_in_url(c) for c in char.items))
    assert isinstance(char, Lit)
    return alt(cat(Lit(b"%"), *_hex(char.data[0], 2)), char)


def _layered(escape: list[Node], full: bool) -> list[Node | None]:
    """An escape as written, then inside a JSON string, then inside a URL: a second layer
    escapes the characters of the first (all of them the same way, as one encoder does)."""
    return [
        cat(*(_in_json(c, full) for c in escape)),
        cat(*(_in_url(c) for c in escape)) if full else None,
        cat(*escape),
    ]


def _percent(byte: int) -> list[Node]:
    return [Lit(b"%"), *_hex(byte, 2)]


@lru_cache(maxsize=4096)
def _char(ch: str, full: bool) -> Node:
    """One character of a value: itself, or escaped once or twice."""
    code = ord(ch)
    if code in _RAW_BYTES:  # a byte: itself or percent-encoded
        byte = Lit(bytes((code - 0xDC00,)))
        return (alt(*_layered(_percent(code - 0xDC00), True), byte) or byte) if full else byte
    raw = Lit(ch.encode("utf-8", "surrogatepass"))
    options: list[Node | None] = []
    for escape in _json_escapes(code, full):
        options += _layered(escape, full)
    if full and len(raw.data) == 1:
        options += _layered(_percent(raw.data[0]), full)
    elif full:  # each byte of the UTF-8 sequence escaped or not
        options.append(
            cat(*(alt(*_layered(_percent(b), full), Lit(bytes((b,)))) for b in raw.data))
        )
    if ch == " ":
        options.append(_once(Lit(b"+"), full))
    return alt(*options, raw) or raw


_GAP = opt(lits(_GAPS) or END) or END


@lru_cache(maxsize=512)
def _b64_char(std: int, url: int, full: bool) -> Node:
    options = []
    for byte in dict.fromkeys((std, url)):
        ch = chr(byte)
        options.append(_once(Lit(ch.encode()), full) if ch.isalnum() else _char(ch, full))
    return alt(*options) or END


def _run_units(run: bytes, urlsafe_run: bytes, full: bool) -> list[Node]:
    units = []
    for i, (std, url) in enumerate(zip(run, urlsafe_run, strict=True)):
        char = _b64_char(std, url, full)
        units.append(char if i == 0 else cat(_GAP, char) or char)
    return units


def languages(text: str) -> list[Language]:
    """The text's own language, then one per distinct base64 run (see the module docstring)."""
    if not text:
        return []
    out = [Language(tuple(_char(c, True) for c in text), tuple(_char(c, False) for c in text))]
    seen: set[bytes] = set()
    for form, encode in enumerate(_B64_TEXTS):
        raw = encode(text).encode("utf-8", "surrogateescape")
        if len(raw) < _MIN_BASE64:
            continue
        for offset in (0, 1, 2):
            run, url = core(raw, offset, False), core(raw, offset, True)
            if run in seen:
                continue
            seen.add(run)
            out.append(
                Language(
                    tuple(_run_units(run, url, True)),
                    tuple(_run_units(run, url, False)),
                    (form, offset),
                )
            )
    return out


_ESCAPED = re.compile(rb"\\u00([0-9a-fA-F]{2})|%([0-9a-fA-F]{2})")


def _unescape(data: bytes) -> bytes:
    for _ in range(3):
        data = _ESCAPED.sub(lambda m: bytes((int(m.group(1) or m.group(2), 16),)), data)
    return data


def render(language: Language, occurrence: bytes, text: str, placeholder: str) -> bytes:
    """What replaces ``occurrence`` (a match of ``language``, a spelling of ``text``)."""
    if language.base64 is not None:
        form, offset = language.base64
        meaning = _unescape(occurrence)
        urlsafe = b"-" in meaning or b"_" in meaning
        raw = _B64_TEXTS[form](placeholder).encode("utf-8", "surrogateescape")
        run = core(raw, offset, urlsafe)
        return quote(run, safe="").encode() if b"%" in occurrence else run
    same = same_form(occurrence, text, placeholder)
    if same is not None:
        return same
    if b"\\" in occurrence:
        return json.dumps(placeholder)[1:-1].encode()
    if b"%" in occurrence:
        return quote(placeholder.encode("utf-8", "surrogateescape"), safe="").encode()
    return placeholder.encode("utf-8", "surrogateescape")
