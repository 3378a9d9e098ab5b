"""Find placeholders on their way where they don't belong. Pure.

A placeholder is worthless outside coatcheck, but one sent to a host outside its secret's
domains means the job tried to use (or smuggle) a credential where it must not go: a signal
worth an audit event, or a refusal with ``--on-leak block``. Scanned forms: raw, percent-encoded,
JSON-escaped, inside base64 (an ``Authorization: Basic`` or any base64 blob), and any other
run's opaque placeholder.

Each form is a run of known bytes (its own, or those of the escapes the decoded views undo), so
only the regions of the data that hold a long enough run of them are scanned (:mod:`proxy.sieve`):
a compressed or binary body is passed over at C speed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from core.placeholders import PREFIX
from proxy.forms import base64_cores, forms
from proxy.sieve import Sieve

_UNICODE_ESCAPE = re.compile(rb"\\u00([0-7][0-9a-fA-F])")


def _unescape(m: re.Match[bytes]) -> bytes:
    return bytes([int(m.group(1), 16)])


_FOREIGN = re.compile(re.escape(PREFIX).encode() + rb"[A-Za-z0-9]{26}")
FOREIGN = "<other_run>"
_ESCAPE_BYTES = len("\\u0041")  # the longest spelling of one byte in a decoded view
# The bytes of another run's placeholder and of the escapes the decoded views read.
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ALWAYS = frozenset(PREFIX.encode() + _ALNUM + b"%\\u")


class LeakScanner:
    """Scans bytes for the given ``(name, placeholder)`` pairs in all their encoded forms."""

    def __init__(self, pairs: Iterable[tuple[str, str]], *, own: Iterable[str] = ()) -> None:
        self._names: dict[bytes, str] = {}
        for name, placeholder in pairs:
            for needle in (*forms(placeholder), *base64_cores(placeholder)):
                self._names.setdefault(needle, name)
        self._own = {p.encode() for p in own}
        needles = sorted(self._names, key=len, reverse=True)
        self._re = re.compile(b"|".join(re.escape(n) for n in needles)) if needles else None
        # What a stream keeps of one chunk for the next: the longest needle, spelled with the
        # longest escape the decoded views read (``\\u00XX``: 6 bytes a byte), and some.
        longest = max((len(n) for n in needles), default=0)
        self.window = _ESCAPE_BYTES * max(longest, len(PREFIX) + 26) + 32
        shortest = min((len(n) for n in needles), default=len(PREFIX) + 26)
        chars = _ALWAYS.union(*needles)
        self._sieve = Sieve(chars, min(shortest, len(PREFIX) + 26))

    def scan(self, data: bytes) -> set[str]:
        """Names found in ``data`` or in its percent- or ``\\u``-decoded view."""
        regions = self._sieve.regions(data)
        if regions == [(0, len(data))]:
            return self._views(data)
        found: set[str] = set()
        for start, end in regions:
            found |= self._views(data[start:end])
        return found

    def _views(self, data: bytes) -> set[str]:
        found = self._scan(data)
        if b"%" in data:
            found |= self._scan(unquote_to_bytes(data))
        if b"\\u" in data:
            found |= self._scan(_UNICODE_ESCAPE.sub(_unescape, data))
        return found

    def _scan(self, data: bytes) -> set[str]:
        found: set[str] = set()
        if self._re is not None:
            found.update(self._names[m.group(0)] for m in self._re.finditer(data))
        if PREFIX.encode() in data:
            for m in _FOREIGN.finditer(data):
                if m.group(0) not in self._own and m.group(0) not in self._names:
                    found.add(FOREIGN)
        return found

    def scan_text(self, text: str) -> set[str]:
        return self.scan(text.encode("utf-8", "surrogateescape"))


class StreamLeakScanner:
    """Streaming form: keeps a small overlap so a placeholder split across chunks is seen."""

    def __init__(self, scanner: LeakScanner) -> None:
        self._scanner = scanner
        self._tail = b""
        self.found: set[str] = set()

    def feed(self, chunk: bytes) -> set[str]:
        data = self._tail + chunk
        new = self._scanner.scan(data) - self.found
        self.found |= new
        self._tail = data[-self._scanner.window :]
        return new
