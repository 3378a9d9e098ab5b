"""Where in a chunk a spelling could be, found at C speed, so that the exact search (a regular
expression that looks at every byte) runs only there. Pure.

Every spelling of a set of values (:mod:`proxy.matching`), and every form of a placeholder the
leak scanner looks for (:mod:`proxy.leaks`), is a run of bytes of a known *alphabet*, at least
``shortest`` bytes long. Data rarely has such runs: compressed or binary bodies (a tarball, an
image, a wheel) have none, and most text is broken into short words by spaces and punctuation.
So :class:`Sieve` finds the maximal runs of the alphabet that are long enough, and the caller
searches those alone; where nothing is found, no byte of the data entered Python or ``re``.

How: a run of at least ``shortest`` bytes holds at least ``k = shortest // step`` consecutive
bytes at positions that are multiples of ``step``. So the data is sampled every ``step`` bytes
(``data[::step]``), the samples mapped to ``a`` (of the alphabet) or ``.`` (``translate``), and
``k`` ``a`` in a row looked for (``find``); around each hit, the run is widened to its true ends
(at most ``step - 1`` bytes each way) and kept if long enough. All of it C loops over a fifth of
the data or less. When the samples find long runs too often (text: words of the alphabet with a
few other bytes between them), every byte is looked at instead (``translate`` and ``find`` over
the whole chunk, still in C).

What a caller may rely on (``tests/proxy/test_bulk_sieve.py`` checks it on arbitrary data):

- every maximal run of the alphabet at least ``shortest`` long lies inside one region;
- with ``tail``, so does the run that the data ends with, however short (a spelling may still
  be completing there);
- every region starts and ends at the edges of maximal runs (or of the data): the byte just
  before it and the one just after it are not of the alphabet. A search inside a region then
  finds exactly what it would find inside the whole data, since no spelling, and no escape
  sequence a decoder reads, spans a byte outside the alphabet.

Regions closer than :data:`MERGE_GAP` are merged (fewer, larger searches); when the regions
cover most of the data, or long runs are many (text full of long words, base64), the whole data
is one region.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_DATA = 4096  # below this the exact search over everything is as cheap
MIN_SHORTEST = 6  # shorter spellings: runs that long are everywhere, sieving does not pay
SAMPLES = 8  # consecutive samples of the alphabet looked for (k)
MERGE_GAP = 256  # regions closer than this are searched as one
HITS_PER_BYTE = 1 / 32768  # past this many runs found (text full of long words), search it all
Regions = list[tuple[int, int]]


class Sieve:
    """The regions of data where a run of ``alphabet`` of ``shortest`` bytes or more may be."""

    __slots__ = ("shortest", "steps", "_marks", "_member", "_chars")

    def __init__(self, alphabet: Iterable[int], shortest: int) -> None:
        members = frozenset(alphabet)
        self.shortest = shortest
        first = max(1, shortest // SAMPLES)
        # Sparse samples first; every byte where they see (what may be) runs too often. (A step
        # in between costs text more than it saves anywhere else.)
        self.steps = (first, 1) if first > 1 else (1,)
        self._marks = bytes(0x61 if b in members else 0x2E for b in range(256))
        self._member = bytes(1 if b in members else 0 for b in range(256))
        self._chars = bytes(sorted(members))

    @property
    def useful(self) -> bool:
        return self.shortest >= MIN_SHORTEST

    def regions(self, data: bytes, *, tail: bool = False) -> Regions:
        """The regions (``start``, ``end``) to search, in order (module docstring). ``tail``:
        the data may go on (a stream's chunk), so the run it ends with counts too."""
        n = len(data)
        if n < MIN_DATA or not self.useful:
            return [(0, n)] if n else []
        for step in self.steps:  # a finer step where a coarse one sees runs (maybe) everywhere
            out = self.sampled(data, step, tail=tail)
            if out is not None and sum(e - s for s, e in out) <= n // 2:
                return out
        return [(0, n)]  # long runs everywhere (base64, hex): search it all

    def sampled(self, data: bytes, step: int, *, tail: bool) -> Regions | None:
        """The regions, from the bytes at multiples of ``step`` (1: every byte); None when
        the samples see long runs too often to follow each."""
        n, member = len(data), self._member
        needle = b"a" * (self.shortest // step)
        marks = (data[::step] if step > 1 else data).translate(self._marks)
        out: Regions = []
        pos, hits = 0, int(n * HITS_PER_BYTE) + 4
        while (j := marks.find(needle, pos)) >= 0:
            hits -= 1
            if hits < 0:
                return None
            j0 = marks.rfind(b".", 0, j) + 1  # the first sample of this run of samples
            j1 = marks.find(b".", j + len(needle))  # the first sample past it
            if j1 < 0:
                j1 = len(marks)
            start, end = j0 * step, (j1 - 1) * step + 1
            while start > 0 and member[data[start - 1]]:
                start -= 1
            while end < n and member[data[end]]:
                end += 1
            if end - start >= self.shortest:
                _add(out, start, end)
            pos = j1
        if tail and member[data[-1]]:
            _add(out, len(data.rstrip(self._chars)), n)
        return out


def _add(out: Regions, start: int, end: int) -> None:
    if out and start - out[-1][1] < MERGE_GAP:
        out[-1] = (out[-1][0], max(end, out[-1][1]))
    else:
        out.append((start, end))
