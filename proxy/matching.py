"""Find the spellings of a set of values in bytes, whole or a chunk at a time. Pure.

Each value has languages (:func:`proxy.spellings.languages`): its own spellings, then its base64
runs, each a sequence of units (a character and its escapes). One regular expression for a
whole language would take seconds to compile for a long value (a JWT), so a :class:`Matcher`
compiles pieces of a bounded size, whatever the length of the values, each on first use:

- per tier, a *lead* pattern of the first :data:`LEAD` units of every language, shaped like a
  trie on its first bytes, so that ``re`` skips at C speed to the candidate positions; for a
  chunk of a stream also a *tail* pattern: data that ends inside those units;
- per tier, a *heads* pattern: the first :data:`HEAD` units of each language, one numbered group
  each, which decides most candidates in one ``re`` call;
- one pattern per distinct unit, shared by every value.

Python walks a language unit by unit (:meth:`Matcher.at`) only past a matching head, or where a
head might end with the data (near the end of a chunk of a stream), and takes the longest match
of the first language (in order) that matches there. A unit that is prefix-free (no spelling of
it is the start of another) ends in one place, found by one ``match``; ``re`` never backtracks
into it (an atomic group), and a walk resumes after a head of them. The others (``\\`` and
``%``: ``%`` is a prefix of ``%25``) are explored every way, skipping the (unit, position) pairs
already seen. A value whose units are all prefix-free and that appears raw is recognised with
one ``startswith``.

With ``final=False`` the data may continue: a position from which some language could still
match with more data is *open*, and nothing is decided from there on. It is always within
``Matcher.longest - 1`` bytes of the end: :mod:`proxy.scrub` holds back that many, whatever the
data, so that what it holds never tells whether the data ends like a value.

Tiers: every spelling with a ``\\u`` or ``%`` escape contains ``\\u`` or ``%``, so data with
neither (and, in a stream, not ending in ``\\``) can only hold spellings without them, whose
*plain* patterns are much smaller and faster.

Regions: all of the above runs only where a long enough run of the bytes that spellings are
made of is (:mod:`proxy.sieve`); binary data (compressed, images, archives) mostly has none.

Cost, per MB of data: about 0.3 ms for binary data, about 1 ms for prose or source code (short
words), about 5 ms for text full of long words made of a value's characters (hex digests for a
hex token, base64), as without the sieve, against 4 ms for literal search; a body made of
near-spellings of a value (its first characters again and again) costs up to about 0.1 s.
Compiling takes tens of milliseconds per set of values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

from proxy.pattern_sets import (
    alphabet,
    lengths,
    longest,
    partials,
    prefix_free,
    prefixes,
    shortest,
    union_by_bytes,
)
from proxy.patterns import (
    END,
    Atom,
    Node,
    cat,
    pattern,
)
from proxy.sieve import Sieve
from proxy.spellings import Language, languages

LEAD = 6  # units of each language that the candidate search looks at
HEAD = 64  # units of each language that one ``re`` match checks at a candidate
OPEN = -1


class _Unit:
    """One unit's patterns: its words, and what may still become one at the end of data."""

    __slots__ = ("word", "partial", "lengths", "longest")

    def __init__(self, node: Node) -> None:
        self.word = re.compile(pattern(node))
        self.partial = re.compile(pattern(cat(prefixes(node), END) or END))
        self.lengths = None if prefix_free(node) else sorted(lengths(node), reverse=True)
        self.longest = longest(node)

    def ends(self, data: bytes, pos: int) -> list[int]:
        """Where the words of this unit that start at ``pos`` end."""
        if self.lengths is None:
            found = self.word.match(data, pos)
            return [] if found is None else [found.end()]
        n = len(data)
        full = self.word.fullmatch
        return [pos + k for k in self.lengths if pos + k <= n and full(data, pos, pos + k)]

    def open_at(self, data: bytes, pos: int) -> bool:
        """Is ``data[pos:]`` a proper prefix of a word (more data could complete it)?"""
        return len(data) - pos < self.longest and self.partial.match(data, pos) is not None


@lru_cache(maxsize=4096)
def _unit(node: Node) -> _Unit:
    return _Unit(node)


class _Walker:
    """Matches one language at a position, unit by unit."""

    __slots__ = ("units", "raw", "free")

    def __init__(self, language: Language, raw: bytes | None) -> None:
        self.units = [_unit(u) for u in language.units]
        free = 0  # how many units from the start are prefix-free
        while free < len(self.units) and self.units[free].lengths is None:
            free += 1
        self.free = free
        # The raw spelling is the only one a run of prefix-free units can take where it fits.
        self.raw = raw if free == len(self.units) else None

    def walk(
        self, data: bytes, start: int, final: bool, resume: tuple[int, int] = (0, -1)
    ) -> tuple[int, bool]:
        """(end of the longest match at ``start`` or -1, whether more data could add one).
        ``resume=(k, pos)``: the first ``k`` (prefix-free) units are known to end at ``pos``."""
        if self.raw is not None and data.startswith(self.raw, start):
            return start + len(self.raw), False
        units, last = self.units, len(self.units)
        k, pos = resume if resume[0] else (0, start)
        while k < self.free:  # one way to go: no search needed
            unit = units[k]
            if not final and unit.open_at(data, pos):
                return -1, True
            found = unit.word.match(data, pos)
            if found is None:
                return -1, False
            k, pos = k + 1, found.end()
        if k == last:
            return pos, False
        return _search(units, data, k, pos, final)


def _search(units: Sequence[_Unit], data: bytes, k: int, pos: int, final: bool) -> tuple[int, bool]:
    """Every way from unit ``k`` at ``pos`` (some unit has words that are prefixes of others)."""
    best, open_, last = -1, False, len(units)
    todo = [(k, pos)]
    seen = set(todo)
    while todo:
        k, pos = todo.pop()
        if k == last:
            best = max(best, pos)
            continue
        unit = units[k]
        if not final and unit.open_at(data, pos):
            open_ = True
        for end in unit.ends(data, pos):
            if (k + 1, end) not in seen:
                seen.add((k + 1, end))
                todo.append((k + 1, end))
    return best, open_


def _atoms(units: Sequence[Node]) -> list[Node]:
    """Units that match in at most one way made atomic, so that ``re`` never backtracks into
    them when a later unit fails (no match is lost: there is no other way to try)."""
    return [unit if _unit(unit).lengths is not None else Atom(unit) for unit in units]


class _Tier:
    """Patterns for one set of languages, each compiled on first use: ``lead`` finds where
    their first :data:`LEAD` units match; ``tail`` where a chunk ends inside those (searched in
    the last ``window`` bytes only); ``heads`` checks the first :data:`HEAD` units of each, in
    one ``match``, its group telling which language."""

    __slots__ = ("_units", "_lead", "_tail", "_heads", "window", "head_span")

    def __init__(self, units: Sequence[Sequence[Node]]) -> None:
        self._units = [_atoms(u[:HEAD]) for u in units]
        self._lead: re.Pattern[bytes] | None = None
        self._tail: re.Pattern[bytes] | None = None
        self._heads: re.Pattern[bytes] | None = None
        self.window = max(sum(longest(n) for n in u[:LEAD]) for u in units)
        self.head_span = max(sum(longest(n) for n in u) for u in self._units)

    @property
    def lead(self) -> re.Pattern[bytes]:
        if self._lead is None:
            heads = [cat(*u[:LEAD]) for u in self._units]
            self._lead = re.compile(union_by_bytes([h for h in heads if h is not None], 2))
        return self._lead

    @property
    def tail(self) -> re.Pattern[bytes]:
        if self._tail is None:
            tails = [partials(u[:LEAD]) for u in self._units]
            self._tail = re.compile(union_by_bytes([t for t in tails if t is not None], 1))
        return self._tail

    @property
    def heads(self) -> re.Pattern[bytes]:
        if self._heads is None:
            heads = [pattern(cat(*u) or END) for u in self._units]
            self._heads = re.compile(b"|".join(b"(" + h + b")" for h in heads))
        return self._heads


class Matcher:
    """Compiled patterns for an ordered tuple of values (placeholder-independent)."""

    def __init__(self, values: Sequence[bytes]) -> None:
        self.texts = [v.decode("utf-8", "surrogateescape") for v in values]
        own: list[tuple[int, Language]] = []
        runs: list[tuple[int, Language]] = []
        for index, text in enumerate(self.texts):
            first, *rest = languages(text)
            own.append((index, first))
            runs += [(index, run) for run in rest]
        ordered = own + runs  # a value's own spelling before any base64 run
        self.owner = [index for index, _ in ordered]
        self.languages = [language for _, language in ordered]
        self._walkers = [
            _Walker(
                language,
                None if language.base64 else self.texts[index].encode("utf-8", "surrogateescape"),
            )
            for index, language in ordered
        ]
        self._full = _Tier([language.units for language in self.languages])
        self._plain = _Tier([language.plain for language in self.languages])
        # The longest spelling of any value: a place where one might still be completing is
        # never further than this from the end of the data (what a stream must hold back).
        self.longest = max(sum(longest(u) for u in language.units) for language in self.languages)
        # Every spelling is a run of these bytes, this long at least: the rest of the data is
        # skipped without a look (see proxy.sieve).
        units = [u for language in self.languages for u in language.units]
        least = min(sum(shortest(u) for u in language.units) for language in self.languages)
        self.sieve = Sieve(frozenset().union(*map(alphabet, units)), least)

    def _tier(self, data: bytes, final: bool) -> _Tier:
        if b"\\u" in data or b"%" in data or (not final and data.endswith(b"\\")):
            return self._full
        return self._plain

    def at(
        self, data: bytes, start: int, final: bool, head: re.Match[bytes] | None = None
    ) -> tuple[int, int]:
        """(language index, end) of the match at ``start``; (OPEN, start) if more data could
        change that; (-2, start) if there is none. ``head``: where the tier's ``heads``
        matched at ``start``, with the data going on past every head (so no earlier language
        matches there nor can with more data)."""
        first = 0 if head is None else (head.lastindex or 1) - 1
        for index in range(first, len(self._walkers)):
            walker = self._walkers[index]
            resume = (0, -1)
            if index == first and head is not None:
                done = min(HEAD, len(walker.units))
                resume = (done, head.end()) if walker.free >= done else resume
            end, open_ = walker.walk(data, start, final, resume)
            if open_:
                return OPEN, start
            if end > start:
                return index, end
        return -2, start

    def scan(self, data: bytes, *, final: bool) -> Iterator[tuple[int, int, int]]:
        """``(language index, start, end)`` of each match, leftmost first, non-overlapping;
        with ``final=False`` it ends with ``(OPEN, start, start)`` at the first open position.

        Only the regions of the data where a spelling may be are searched (:mod:`proxy.sieve`),
        each on its own: no match and no open position spans a region's edge, so the result
        is the same as searching the whole data (:meth:`scan_all`)."""
        n = len(data)
        regions = self.sieve.regions(data, tail=not final)
        if regions == [(0, n)]:
            yield from self.scan_all(data, final=final)
            return
        for start, end in regions:
            part = data[start:end]
            for index, first, last in self.scan_all(part, final=final or end < n):
                yield index, first + start, last + start

    def scan_all(self, data: bytes, *, final: bool) -> Iterator[tuple[int, int, int]]:
        """:meth:`scan` over every byte of ``data``.

        Python walks a candidate only where a spelling might end with the data, or where the
        first units of a language match (one ``re`` call): elsewhere ``re`` decides."""
        tier = self._tier(data, final)
        lead, n = tier.lead.search, len(data)
        near = n if final else max(0, n - tier.window + 1)  # the first units may end here
        headed = n if final else max(0, n - tier.head_span + 1)  # the heads can't end here
        pos = 0
        while True:
            found = lead(data, pos)
            start = n if found is None else found.start()
            if start >= near:
                partial = tier.tail.search(data, max(pos, near))
                if partial is not None and partial.start() < start:
                    start = partial.start()
            if start >= n:
                return
            if start < headed:
                head = tier.heads.match(data, start)
                if head is None:
                    pos = start + 1
                    continue
                index, end = self.at(data, start, final, head)
            else:
                index, end = self.at(data, start, final)
            if index == OPEN:
                yield OPEN, start, start
                return
            if index < 0:
                pos = start + 1
                continue
            yield index, start, end
            pos = end


@lru_cache(maxsize=32)
def matcher_for(values: tuple[bytes, ...]) -> Matcher:
    return Matcher(values)
