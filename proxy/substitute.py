"""Swap placeholders for real values in the surfaces a secret allows. Pure.

Surfaces: ``header`` (any header value, as is), ``basic`` (inside ``Authorization: Basic``,
decoded, swapped, re-encoded), ``query`` (URL-encoded value), ``body`` (JSON-escaped in JSON
bodies, form-encoded in form bodies, as is in other text bodies). The caller decides which
secrets may be used for a request (policy.injectable); this module only rewrites text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

_BASIC_RE = re.compile(r"^(\s*basic\s+)([A-Za-z0-9+/=_-]+)(\s*)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Swap:
    """One secret made usable for one request. ``value`` is the real value: never log a Swap."""

    name: str
    placeholder: str
    value: str
    surfaces: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Swap(name={self.name!r}, placeholder={self.placeholder!r}, value='**********')"


def swap_header(value: str, swaps: Sequence[Swap]) -> tuple[str, set[str]]:
    used: set[str] = set()
    out = value
    for s in swaps:
        if "header" in s.surfaces and s.placeholder in out:
            out = out.replace(s.placeholder, s.value)
            used.add(s.name)
    basic = [s for s in swaps if "basic" in s.surfaces]
    if basic and (m := _BASIC_RE.match(out)):
        decoded = decode_basic(m.group(2))
        if decoded is not None:
            text, changed = decoded, False
            for s in basic:
                if s.placeholder in text:
                    text = text.replace(s.placeholder, s.value)
                    used.add(s.name)
                    changed = True
            if changed:
                token = base64.b64encode(text.encode("utf-8")).decode("ascii")
                out = m.group(1) + token + m.group(3)
    return out, used


def decode_basic(token: str) -> str | None:
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_")
    except (binascii.Error, ValueError):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def basic_payload(value: str) -> str | None:
    """The decoded text of an ``Authorization: Basic`` value, or None."""
    m = _BASIC_RE.match(value)
    return decode_basic(m.group(2)) if m else None


def swap_query(query: str, swaps: Sequence[Swap]) -> tuple[str, set[str]]:
    used: set[str] = set()
    for s in swaps:
        if "query" not in s.surfaces:
            continue
        for form in {s.placeholder, quote(s.placeholder, safe="")}:
            if form in query:
                query = query.replace(form, quote(s.value, safe=""))
                used.add(s.name)
    return query, used


def body_kind(content_type: str) -> str:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == "application/json" or ct.endswith("+json"):
        return "json"
    if ct == "application/x-www-form-urlencoded":
        return "form"
    if ct.startswith("multipart/"):
        return "multipart"
    return "raw"


def swap_body(body: bytes, content_type: str, swaps: Sequence[Swap]) -> tuple[bytes, set[str]]:
    """Swap in ``body``; the caller refuses multipart and compressed bodies beforehand."""
    kind = body_kind(content_type)
    used: set[str] = set()
    for s in swaps:
        if "body" not in s.surfaces:
            continue
        needle = s.placeholder.encode()
        if needle not in body:
            continue
        if kind == "json":
            repl = json.dumps(s.value, ensure_ascii=False)[1:-1].encode("utf-8")
        elif kind == "form":
            repl = quote_plus(s.value).encode("ascii")
        else:
            repl = s.value.encode("utf-8")
        body = body.replace(needle, repl)
        used.add(s.name)
    return body, used


def mentions(data: bytes, placeholders: Iterable[str]) -> bool:
    return any(p.encode() in data for p in placeholders)
