"""Finite byte languages as small trees, compiled to regular expressions. Pure.

:mod:`proxy.spellings` writes every way a value may be spelled as a tree of :class:`Lit` (bytes),
:class:`Alt` (ordered choice), :class:`Cat` (sequence) and :data:`END` (the end of the data);
``None`` stands for the empty language. The constructors :func:`alt` and :func:`cat` flatten,
drop impossible branches and merge adjacent literals. Trees are immutable, compared by value and
shared: the units of a value (a character and its escapes) recur in every value.

- :func:`pattern`: the ``re`` pattern of a tree, with the same leftmost-first order of choices;
- :func:`union_by_bytes`: a pattern that finds where any of several languages may match, shaped
  like a trie on its first bytes, so that ``re`` searches it with a character set;
- :func:`prefixes` and :func:`partials`: what may still grow into a match when the data ends;
- :func:`prefix_free`, :func:`lengths`, :func:`longest`: facts a matcher needs about a unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


class _Node:
    """Immutable, compared by value, with the hash computed once (trees are shared a lot)."""

    __slots__ = ("_hash",)
    _hash: int

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is type(self) and hash(other) == self._hash and self._key() == other._key()  # type: ignore[attr-defined]
        )

    def _key(self) -> object:
        raise NotImplementedError


class Lit(_Node):
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._hash = hash((1, data))

    def _key(self) -> object:
        return self.data

    def __repr__(self) -> str:
        return f"Lit({self.data!r})"


class Alt(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items
        self._hash = hash((2, items))

    def _key(self) -> object:
        return self.items

    def __repr__(self) -> str:
        return f"Alt({self.items!r})"


class Cat(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple[Node, ...]) -> None:
        self.items = items
        self._hash = hash((3, items))

    def _key(self) -> object:
        return self.items

    def __repr__(self) -> str:
        return f"Cat({self.items!r})"


class Atom(_Node):
    """``item`` matched as an atomic group: ``re`` never backtracks into it. Only for an item
    that can match in at most one way at a position (:func:`prefix_free`): then nothing is lost."""

    __slots__ = ("item",)

    def __init__(self, item: Node) -> None:
        self.item = item
        self._hash = hash((5, item))

    def _key(self) -> object:
        return self.item

    def __repr__(self) -> str:
        return f"Atom({self.item!r})"


class End(_Node):
    __slots__ = ()

    def __init__(self) -> None:
        self._hash = hash((4,))

    def _key(self) -> object:
        return None

    def __repr__(self) -> str:
        return "END"


Node = Lit | Alt | Cat | Atom | End
EPS = Lit(b"")
END = End()


def alt(*items: Node | None) -> Node | None:
    """Ordered choice; an impossible branch is dropped, a repeated one kept once (the first)."""
    out: dict[Node, None] = {}
    for item in items:
        if isinstance(item, Alt):
            out.update(dict.fromkeys(item.items))
        elif item is not None:
            out[item] = None
    if not out:
        return None
    return next(iter(out)) if len(out) == 1 else Alt(tuple(out))


def cat(*items: Node | None) -> Node | None:
    """Sequence; impossible if any part is, adjacent literals merged."""
    out: list[Node] = []
    for item in items:
        if item is None:
            return None
        for part in item.items if isinstance(item, Cat) else (item,):
            if isinstance(part, Lit) and out and isinstance(out[-1], Lit):
                out[-1] = Lit(out[-1].data + part.data)
            elif part != EPS:
                out.append(part)
    if not out:
        return EPS
    return out[0] if len(out) == 1 else Cat(tuple(out))


def opt(item: Node) -> Node | None:
    return alt(item, EPS)


def lits(options: Iterable[bytes]) -> Node | None:
    return alt(*(Lit(o) for o in options))


ESCAPED = [re.escape(bytes((b,))) for b in range(256)]


def _escape(data: bytes) -> bytes:
    return b"".join([ESCAPED[b] for b in data])


@lru_cache(maxsize=8192)
def pattern(node: Node) -> bytes:
    """The regular expression of ``node`` (cached: the same units recur in many trees)."""
    if isinstance(node, Lit):
        return _escape(node.data)
    if isinstance(node, End):
        return rb"\Z"
    if isinstance(node, Atom):
        return b"(?>" + pattern(node.item) + b")"
    if isinstance(node, Cat):
        return b"".join(pattern(item) for item in node.items)
    rest = [item for item in node.items if item != EPS]
    if len(rest) > 1 and all(isinstance(i, Lit) and len(i.data) == 1 for i in rest):
        body = b"[" + b"".join(_escape(i.data) for i in rest if isinstance(i, Lit)) + b"]"
    else:
        body = b"(?:" + b"|".join(pattern(item) for item in rest) + b")"
    if len(rest) == len(node.items):
        return body
    if node.items[-1] == EPS:
        return body + b"?"
    return b"(?:" + b"|".join(pattern(item) for item in node.items) + b")"
