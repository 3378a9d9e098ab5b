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
however the body is chunked, a boundary inside an escape sequence included.

**What it holds back never depends on whether the data ends like a value.** Holding back only a
tail that might still become a value (as this module once did) is a timing oracle: a job asks an
allowlisted echo to end a chunk with a guess, and learns from whether the guess comes at once or
only with the next chunk whether it is the start of a real value, then the next character, and
so on. So the carry-over is fixed by the data's *length and line breaks*, never by its likeness
to a value: after each chunk the scrubber holds the last ``window`` bytes (the longest spelling
of any of its values, less one, fixed per set of pairs, so per run view: where a spelling may
still be completing is never further from the end), or fewer when a line break that no spelling
can run across comes later (a line feed not preceded, through one CR, by a byte a base64
spelling can end with: ``}\n``, a blank line; which kind of byte that is, the job knows, having
chosen it; it says nothing of the values). It releases them with the next chunk or at the end
of the stream; no timer (mitmproxy's stream callback can't send without a chunk, and a release
after a fixed idle delay would let a value split across a pause out half-way). So a server-sent
event, or an NDJSON line, that is whole in its chunk goes out at once, and a chunk cut mid-line
waits for the next one. A value that completes before the held tail is replaced; one that ends
inside it stays held; either way what goes out differs only where a whole value was, which the
job can't use to learn one.

:class:`Detector` is for a response to a request that carried no value (:mod:`proxy.responses`):
it holds back nothing and replaces nothing, and says when a whole value has arrived, across
chunks too; the caller then stops the response (``unexpected_value``). Before that the client
got only bytes that are not a whole value. For an echo, that is what the job sent itself.

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
# The bytes a base64 spelling of a value may end with before a line break (a character of
# either alphabet, or the last of its escape): a spelling holds CR or LF only in such a break.
_BASE64_END = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


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
        self.window = self.matcher.longest - 1  # the longest a spelling still completing can be
        # Vault values hold no CR or LF (refused at `vault set`); were one to, no break is safe.
        self.breaks = not any(b"\n" in v or b"\r" in v for v in values)

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


def _after_break(data: bytes, start: int) -> int:
    """The position after the last line feed at or past ``start`` that no spelling runs across
    (see the module docstring), or ``start``. Looks only at bytes, never at the values."""
    end = len(data)
    while (i := data.rfind(b"\n", start, end)) >= 0:
        j = i - 1 if i and data[i - 1] != 13 else i - 2  # the byte before it (and a CR)
        if j >= 0 and data[j] not in _BASE64_END:
            return i + 1
        end = i
    return start


class Scrubber:
    """Streaming scrubber for one response body: ``feed`` each chunk, then ``flush`` once.
    What it holds back depends on the data's length and line breaks only (module docstring)."""

    __slots__ = ("_table", "_carry")

    def __init__(self, pairs: Pairs) -> None:
        self._table = _table(pairs)
        self._carry = b""

    @property
    def held(self) -> int:
        """How many bytes are held back, until the next chunk or the end of the stream."""
        return len(self._carry)

    def feed(self, chunk: bytes) -> bytes:
        """Everything before the held-back tail, scrubbed."""
        table = self._table
        if table is None:
            return chunk
        data = self._carry + chunk if self._carry else chunk
        release = max(len(data) - table.window, 0)
        if table.breaks:
            release = _after_break(data, release)
        if release == 0:
            self._carry = data
            return b""
        out: list[bytes] = []
        pos = 0
        for index, start, end in table.matcher.scan(data, final=False):
            if start >= release:  # held: decided with the next chunk, whatever it is now
                break
            if index == OPEN:  # can't be, by the window and the breaks; never let it out
                release = start
                break
            out += (data[pos:start], table.replacement(index, data[start:end]))
            pos = end  # a value that ends past `release` goes out whole, as its placeholder
        cut = max(pos, release)
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


class Detector:
    """Watches a body that should hold no value: nothing is held back or replaced; ``feed``
    says whether a whole value has arrived (in any spelling, across chunks too)."""

    __slots__ = ("_table", "_tail")

    def __init__(self, pairs: Pairs) -> None:
        self._table = _table(pairs)
        self._tail = b""  # from where a value may still be completing (seen, not held)

    def feed(self, chunk: bytes) -> bool:
        table = self._table
        if table is None:
            return False
        data = self._tail + chunk if self._tail else chunk
        for index, start, _ in table.matcher.scan(data, final=False):
            if index != OPEN:
                return True
            self._tail = data[start:]  # and a shorter value may be whole inside it already
            return next(table.matcher.scan(self._tail, final=True), None) is not None
        self._tail = b""
        return False


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
