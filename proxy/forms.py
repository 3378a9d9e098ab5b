"""The uniform byte forms in which a token may travel on the wire. Pure.

A secret echoed by an upstream rarely comes back verbatim: it sits in a JSON string, a
percent-encoded query or form field, or inside base64 (``Authorization: Basic
base64(user:TOKEN)``). :func:`forms` gives the textual encodings as whole-value encoders write
them:

- raw UTF-8;
- JSON string contents: non-ASCII kept or ``\\uXXXX``-escaped (lower- or upper-case hex), ``/``
  kept or escaped as ``\\/``, and the HTML-safe variant (``<``, ``>``, ``&``, U+2028/9 as
  ``\\uXXXX``, as Go's encoding/json writes them);
- percent-encoding: everything reserved encoded (``quote(safe="")``), ``/`` kept (``quote``),
  JavaScript's ``encodeURIComponent`` set, and form encoding (``quote_plus``), each with upper-
  and lower-case hex.

:func:`base64_cores` gives, for each of the three alignments the text can have inside a base64
stream (preceded by 0, 1 or 2 bytes mod 3) and for the standard and URL-safe alphabets, the run of
base64 characters fully determined by the text alone: characters that mix in bits of the
neighbouring bytes are dropped. Texts shorter than 6 bytes have none (cores that short would
match by chance).

These lists are what the leak scanner (:mod:`proxy.leaks`) looks for, and what
:func:`same_form` uses to give a scrubbed occurrence its placeholder in the very form it had. The
scrubber itself matches by meaning: any mix of escaped and unescaped characters
(:mod:`proxy.spellings`), so :func:`paired_forms` now only pairs the value with its placeholder.

All outputs are deduplicated in a stable order; the empty string has no forms.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import lru_cache
from itertools import product
from urllib.parse import quote, quote_plus

_MIN_BASE64 = 6
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)")
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_URL_SAFE = bytes.maketrans(b"+/", b"-_")


def _upper_hex(m: re.Match[str]) -> str:
    escape = m.group()
    return "\\u" + escape[2:].upper() if escape[1] == "u" else escape


def _json(ascii_only: bool, upper: bool, slash: bool, html: bool) -> Callable[[str], str]:
    def encode(text: str) -> str:
        out = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
        if slash:
            out = out.replace("/", "\\/")
        if html:
            for char, escape in _HTML.items():
                out = out.replace(char, escape)
        if upper:
            out = _ESCAPE.sub(_upper_hex, out)
        return out

    return encode


def _percent(quoter: Callable[[str], str], lower: bool) -> Callable[[str], str]:
    def encode(text: str) -> str:
        out = quoter(text)
        return _PERCENT.sub(lambda m: m.group().lower(), out) if lower else out

    return encode


_QUOTERS: tuple[Callable[[str], str], ...] = (
    lambda t: quote(t, safe=""),
    lambda t: quote(t, safe="/"),
    lambda t: quote(t, safe="!'()*"),  # encodeURIComponent
    lambda t: quote_plus(t, safe=""),
)


def _json_twice(text: str) -> str:
    """JSON inside a JSON string (an echoed request body): differs only for ``"`` and ``\\``."""
    once = json.dumps(text)[1:-1]
    return json.dumps(once)[1:-1]


_ENCODERS: tuple[Callable[[str], str], ...] = (
    lambda t: t,
    *(_json(*flags) for flags in product((False, True), repeat=4)),
    _json_twice,
    *(_percent(q, lower) for q in _QUOTERS for lower in (False, True)),
)


def _dedupe(items: list[bytes]) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys(items))


def forms(text: str) -> tuple[bytes, ...]:
    """Raw, JSON-escaped and percent-encoded forms of ``text``, deduplicated."""
    if not text:
        return ()
    return _dedupe([encode(text).encode("utf-8", "surrogatepass") for encode in _ENCODERS])


def core(raw: bytes, offset: int, urlsafe: bool) -> bytes:
    """Base64 characters of ``raw`` preceded by ``offset`` bytes that depend on ``raw`` only."""
    encoded = base64.b64encode(bytes(offset) + raw)
    first = -(-8 * offset // 6)  # ceil: the first character starting inside raw
    end = 8 * (offset + len(raw)) // 6  # floor: the characters ending inside raw
    run = encoded[first:end]
    return run.translate(_URL_SAFE) if urlsafe else run


_ALIGNMENTS = tuple(product((0, 1, 2), (False, True)))


def base64_cores(text: str) -> tuple[bytes, ...]:
    """The determined base64 runs of ``text`` in every alignment and both alphabets."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < _MIN_BASE64:
        return ()
    return _dedupe([core(raw, offset, urlsafe) for offset, urlsafe in _ALIGNMENTS])


def paired_forms(real: str, placeholder: str) -> tuple[tuple[bytes, bytes], ...]:
    """``((real, placeholder),)`` as UTF-8: what :mod:`proxy.scrub` takes for one secret (it
    derives every spelling of ``real`` itself). Empty for an empty ``real``."""
    if not real:
        return ()
    return ((_utf8(real), _utf8(placeholder)),)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@lru_cache(maxsize=256)
def _form_index(real: str) -> dict[bytes, int]:
    index: dict[bytes, int] = {}
    for i, encode in enumerate(_ENCODERS):
        index.setdefault(_utf8(encode(real)), i)
    return index


def same_form(occurrence: bytes, real: str, placeholder: str) -> bytes | None:
    """``placeholder`` in the form ``occurrence`` has, if it is one of the :func:`forms` of
    ``real``; else None."""
    i = _form_index(real).get(occurrence)
    return None if i is None else _utf8(_ENCODERS[i](placeholder))
