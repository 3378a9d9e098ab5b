"""Replace real values with their placeholders in responses, streamed or whole. Pure.

The caller gives ``(needle, replacement)`` pairs (from :func:`proxy.forms.paired_forms` for each
secret). Replacement is leftmost-longest and non-overlapping, in one pass: at each position the
longest needle that starts there wins, the scan resumes after it, and replacements are never
rescanned. Among equal needles the first pair wins.

Streaming (:class:`Scrubber`) gives exactly what :func:`scrub_bytes` gives on the whole body,
however the body is chunked. Its carry-over is minimal: after each chunk it holds back only the
longest tail of the data that is a proper prefix of some needle and so might still become a
match; everything before it is final and is forwarded at once. A server-sent event that does
not end in a partial match passes through immediately. Memory is bounded by the longest needle;
there is no limit on the stream.

Matching is one compiled regular expression shaped like the trie of the needles (each byte
position is dispatched on its byte, not tried against every needle). The partial-match check
runs an Aho-Corasick automaton over the last ``longest needle - 1`` bytes of a chunk, and is
skipped when the last byte can't be inside a needle (the usual case for text ending in a
newline). Compiled tables are cached per set of pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

Pairs = Sequence[tuple[bytes, bytes]]


class _Table:
    """Compiled, immutable matching data for one set of pairs."""

    def __init__(self, pairs: tuple[tuple[bytes, bytes], ...]) -> None:
        self.replacements: dict[bytes, bytes] = {}
        for needle, replacement in pairs:
            if not needle:
                raise ValueError("an empty needle would match everywhere")
            self.replacements.setdefault(needle, replacement)
        needles = list(self.replacements)
        self.maxlen = max(len(n) for n in needles)
        self.inner = frozenset(b for n in needles for b in n[:-1])
        self.goto: list[dict[int, int]] = [{}]
        self.terminal = [False]
        self.depth = [0]
        for needle in needles:
            self._insert(needle)
        self.fail = self._failure_links()
        self.regex = _compile_regex(self, needles)

    def _insert(self, needle: bytes) -> None:
        node = 0
        for byte in needle:
            child = self.goto[node].get(byte)
            if child is None:
                child = len(self.goto)
                self.goto.append({})
                self.terminal.append(False)
                self.depth.append(self.depth[node] + 1)
                self.goto[node][byte] = child
            node = child
        self.terminal[node] = True

    def _failure_links(self) -> list[int]:
        fail = [0] * len(self.goto)
        queue = list(self.goto[0].values())
        for node in queue:  # breadth first: the list grows while we walk it
            for byte, child in self.goto[node].items():
                f = fail[node]
                while f and byte not in self.goto[f]:
                    f = fail[f]
                fail[child] = self.goto[f].get(byte, 0)
                queue.append(child)
        return fail

    def holds(self, data: bytes) -> list[int]:
        """Ascending start positions of the tails of ``data`` that are proper needle prefixes."""
        n = len(data)
        if not n or data[-1] not in self.inner:
            return []
        goto, fail, state = self.goto, self.fail, 0
        for byte in data[max(0, n - self.maxlen + 1) :]:
            while state and byte not in goto[state]:
                state = fail[state]
            state = goto[state].get(byte, 0)
        starts = []
        while state:
            if goto[state]:
                starts.append(n - self.depth[state])
            state = fail[state]
        return starts

    def replace(self, match: re.Match[bytes]) -> bytes:
        return self.replacements[match.group()]


def _compile_regex(table: _Table, needles: list[bytes], *, trie: bool = True) -> re.Pattern[bytes]:
    """One pattern for all needles, leftmost-longest; a flat alternation if the trie is too deep."""
    if trie:
        try:
            return re.compile(_trie_pattern(table, 0))
        except (RecursionError, re.error, OverflowError):
            pass
    needles = sorted(needles, key=len, reverse=True)  # sre takes the first alternative that fits
    return re.compile(b"|".join(re.escape(n) for n in needles))


def _trie_pattern(table: _Table, node: int) -> bytes:
    """Pattern for the paths below ``node``; at a needle end a longer path is tried first."""
    alternatives = []
    for byte, child in table.goto[node].items():
        chain = [byte]
        while not table.terminal[child] and len(table.goto[child]) == 1:
            [(byte, child)] = table.goto[child].items()
            chain.append(byte)
        alternative = re.escape(bytes(chain))
        if table.goto[child]:
            below = _trie_pattern(table, child)
            alternative += b"(?:" + below + b")?" if table.terminal[child] else below
        alternatives.append(alternative)
    if len(alternatives) == 1:
        return alternatives[0]
    return b"(?:" + b"|".join(alternatives) + b")"


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
        """How many bytes are held back, waiting to see if they complete a needle."""
        return len(self._carry)

    def feed(self, chunk: bytes) -> bytes:
        """Everything that can be forwarded now, scrubbed."""
        table = self._table
        if table is None:
            return chunk
        data = self._carry + chunk if self._carry else chunk
        holds = table.holds(data)
        out: list[bytes] = []
        pos = i = 0
        for match in table.regex.finditer(data):
            while i < len(holds) and holds[i] < pos:
                i += 1
            if i < len(holds) and match.start() >= holds[i]:
                break  # a match that a longer or earlier needle might still beat
            out += (data[pos : match.start()], table.replacements[match.group()])
            pos = match.end()
        while i < len(holds) and holds[i] < pos:
            i += 1
        cut = holds[i] if i < len(holds) else len(data)
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
        return self._table.regex.sub(self._table.replace, data)


def scrub_bytes(data: bytes, pairs: Pairs) -> bytes:
    """``data`` with every needle replaced (same result as feeding it to a Scrubber)."""
    table = _table(pairs)
    return data if table is None else table.regex.sub(table.replace, data)


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
    """Does ``data`` contain any of the (non-empty) needles?"""
    return any(needle and needle in data for needle in needles)


def found_in(data: bytes, pairs: Pairs) -> bool:
    """Does ``data`` hold any needle of ``pairs``? (One regex search: a cheap pre-check.)"""
    table = _table(pairs)
    return table is not None and table.regex.search(data) is not None
