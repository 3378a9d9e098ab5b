"""Replace real values with their placeholders in responses, streamed or whole. Pure.

The caller gives ``(value, placeholder)`` pairs, UTF-8 (:func:`proxy.forms.paired_forms` for
each secret). A value is matched by meaning, not by one spelling: every spelling that a client
decodes back to it (JSON and percent escapes in any mix, up to two layers, and base64; see
:mod:`proxy.spellings`) is replaced by the placeholder in a form that a client decodes to the
placeholder and that keeps the JSON around it valid (:func:`proxy.spellings.render`).

Matching is leftmost and non-overlapping, in one pass (:mod:`proxy.matching`): at each position
the first value whose spellings match there wins (longer values first; among equal values the
first pair), with its longest match; the scan resumes after it, and replacements are never
rescanned.

Streaming (:class:`Scrubber`) gives exactly what :func:`scrub_bytes` gives on the whole body,
however the body is chunked, a boundary inside an escape sequence included. Its carry-over is
minimal: after each chunk it holds back only the tail of the data from the first position where
a spelling might still be completing; everything before it is final and is forwarded at once. A
server-sent event that does not end inside a possible spelling passes through immediately.
Memory is bounded by the longest spelling; there is no limit on the stream.

Compiled patterns are cached per set of values (:func:`proxy.matching.matcher_for`), tables
(values and placeholders) per set of pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from proxy.matching import OPEN, matcher_for
from proxy.spellings import render

Pairs = Sequence[tuple[bytes, bytes]]


class _Table:
    """A matcher and the placeholders of one set of pairs."""

    def __init__(self, pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        entries: dict[bytes, bytes] = {}
        for value, placeholder in pairs:
            if not value:
                raise ValueError("an empty value would match everywhere")
            entries.setdefault(value, placeholder)
        values = tuple(sorted(entries, key=len, reverse=True))
        self.matcher = matcher_for(values)
        self.placeholders = [entries[v].decode("utf-8", "surrogateescape") for v in values]

    def replacement(self, index: int, occurrence: bytes) -> bytes:
        m = self.matcher
        value = m.owner[index]
        return render(m.languages[index], occurrence, m.texts[value], self.placeholders[value])

    def sub(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pos = 0
        for index, start, end in self.matcher.scan(data, final=True):
            out += (data[pos:start], self.replacement(index, data[start:end]))
            pos = end
        if not out:
            return data
        out.append(data[pos:])
        return b"".join(out)


@lru_cache(maxsize=64)
def _table_for(pairs: tuple[tuple[bytes, bytes], ...]) -> _Table | None:
    return _Table(pairs) if pairs else None


def _table(pairs: Pairs) -> _Table | None:
    if not pairs:
        return None
    if type(pairs) is tuple:  # the hot path: a run's pairs, built once per vault generation
        return _table_for(pairs)
    return _table_for(tuple((bytes(n), bytes(r)) for n, r in pairs))


class Scrubber:
    """Streaming scrubber for one response body: ``feed`` each chunk, then ``flush`` once."""

    __slots__ = ("_table", "_carry")

    def __init__(self, pairs: Pairs) -> None:
        self._table = _table(pairs)
        self._carry = b""

    @property
    def held(self) -> int:
        """How many bytes are held back, waiting to see if they complete a match."""
        return len(self._carry)

    def feed(self, chunk: bytes) -> bytes:
        """Everything that can be forwarded now, scrubbed."""
        table = self._table
        if table is None:
            return chunk
        data = self._carry + chunk if self._carry else chunk
        out: list[bytes] = []
        pos = cut = 0
        for index, start, end in table.matcher.scan(data, final=False):
            if index == OPEN:
                cut = start
                break
            out += (data[pos:start], table.replacement(index, data[start:end]))
            pos = end
        else:
            cut = len(data)
        self._carry = data[cut:]
        if not out:
            return data if cut == len(data) else data[:cut]
        out.append(data[pos:cut])
        return b"".join(out)

    def flush(self) -> bytes:
        """The held-back rest, scrubbed: call it at the end of the stream."""
        data, self._carry = self._carry, b""
        if self._table is None or not data:
            return data
        return self._table.sub(data)


def scrub_bytes(data: bytes, pairs: Pairs) -> bytes:
    """``data`` with every value replaced (same result as feeding it to a Scrubber)."""
    table = _table(pairs)
    return data if table is None else table.sub(data)


def scrub_text(text: str, pairs: Pairs) -> str:
    """:func:`scrub_bytes` on the UTF-8 bytes of ``text`` (lone surrogates survive)."""
    if not pairs:
        return text
    errors = "surrogateescape"
    try:
        raw = text.encode("utf-8", errors)
    except UnicodeEncodeError:
        errors = "surrogatepass"
        raw = text.encode("utf-8", errors)
    return scrub_bytes(raw, pairs).decode("utf-8", errors)


def contains_any(data: bytes, needles: Iterable[bytes]) -> bool:
    """Does ``data`` contain any of the (non-empty) needles, byte for byte?"""
    return any(needle and needle in data for needle in needles)


def found_in(data: bytes, pairs: Pairs) -> bool:
    """Does ``data`` hold any value of ``pairs``, in any spelling? (One regex search.)"""
    table = _table(pairs)
    if table is None:
        return False
    return next(table.matcher.scan(data, final=True), None) is not None
