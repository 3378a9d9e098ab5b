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
from collections.abc import Iterable, Sequence
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


class End(_Node):
    __slots__ = ()

    def __init__(self) -> None:
        self._hash = hash((4,))

    def _key(self) -> object:
        return None

    def __repr__(self) -> str:
        return "END"


Node = Lit | Alt | Cat | End
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


_ESCAPED = [re.escape(bytes((b,))) for b in range(256)]


def _escape(data: bytes) -> bytes:
    return b"".join([_ESCAPED[b] for b in data])


@lru_cache(maxsize=8192)
def pattern(node: Node) -> bytes:
    """The regular expression of ``node`` (cached: the same units recur in many trees)."""
    if isinstance(node, Lit):
        return _escape(node.data)
    if isinstance(node, End):
        return rb"\Z"
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


def nullable(node: Node, *, at_end: bool = False) -> bool:
    """Does ``node`` match the empty string? END does only ``at_end`` of the data (and then
    nothing may follow it)."""
    if isinstance(node, Lit):
        return not node.data
    if isinstance(node, End):
        return at_end
    if isinstance(node, Alt):
        return any(nullable(i, at_end=at_end) for i in node.items)
    return all(nullable(i, at_end=at_end) for i in node.items)


def first_bytes(node: Node) -> dict[int, None]:
    """The bytes a nonempty match can start with, in order of appearance."""
    if isinstance(node, Lit):
        return {node.data[0]: None} if node.data else {}
    if isinstance(node, End):
        return {}
    out: dict[int, None] = {}
    for item in node.items:
        out.update(first_bytes(item))
        if isinstance(node, Cat) and not nullable(item):
            break
    return out


def derivative(node: Node, byte: int) -> Node | None:
    """What must follow ``byte`` for a match of ``node`` (order of choices kept)."""
    if isinstance(node, Lit):
        return Lit(node.data[1:]) if node.data[:1] == bytes((byte,)) else None
    if isinstance(node, End):
        return None
    if isinstance(node, Alt):
        return alt(*(derivative(item, byte) for item in node.items))
    head, rest = node.items[0], node.items[1:]
    first = cat(derivative(head, byte), *rest)
    if not nullable(head):
        return first
    tail = cat(*rest)
    return alt(first, derivative(tail, byte) if tail is not None else None)


def prefixes(node: Node) -> Node | None:
    """The proper prefixes of ``node``'s words, the empty one included. Keep ``node`` small:
    the result nests one level per item of a sequence."""
    if isinstance(node, Lit):
        return lits(node.data[:i] for i in range(len(node.data)))
    if isinstance(node, End):
        return None
    if isinstance(node, Alt):
        return alt(*(prefixes(item) for item in node.items))
    head, rest = node.items[0], node.items[1:]
    if not rest:
        return prefixes(head)
    tail = cat(*rest)
    later = prefixes(tail) if tail is not None else None
    return alt(prefixes(head), cat(head, later) if later is not None else None)


def partials(units: Sequence[Node]) -> Node | None:
    """Strings ending at END that are nonempty proper prefixes of ``cat(*units)``, or whole
    words of it that more data could extend: ``(?:U1|P1\\Z)(?:U2|P2\\Z)...Pn\\Z`` where
    ``Pk`` are the proper prefixes of ``Uk`` (flat: no group nests another per unit)."""
    if not units:
        return None
    *body, last = units
    steps = [alt(unit, cat(prefixes(unit), END)) for unit in body]
    return cat(*steps, cat(prefixes(last), END))


def lengths(node: Node) -> frozenset[int]:
    """The lengths of the words of ``node``."""
    if isinstance(node, Lit):
        return frozenset((len(node.data),))
    if isinstance(node, End):
        return frozenset((0,))
    if isinstance(node, Alt):
        return frozenset().union(*(lengths(i) for i in node.items))
    out = frozenset((0,))
    for item in node.items:
        out = frozenset(a + b for a in out for b in lengths(item))
    return out


def prefix_free(node: Node) -> bool:
    """Is no word of ``node`` a proper prefix of another? (Then at most one word matches at a
    position.) Walks the derivatives of ``node``: keep it small."""
    seen = {node}
    todo = [node]
    while todo:
        state = todo.pop()
        following = first_bytes(state)
        if state is not node and following and nullable(state):
            return False
        for byte in following:
            after = derivative(state, byte)
            if after is not None and after not in seen:
                seen.add(after)
                todo.append(after)
    return True


def longest(node: Node) -> int:
    if isinstance(node, Lit):
        return len(node.data)
    if isinstance(node, End):
        return 0
    if isinstance(node, Alt):
        return max(longest(i) for i in node.items)
    return sum(longest(i) for i in node.items)


def union_by_bytes(languages: Sequence[Node], depth: int, *, nested: bool = False) -> bytes:
    """A pattern that matches where any of ``languages`` does (which one, and how long, is
    left open: it finds candidates), shaped like a trie on its first ``depth`` bytes:
    ``a(?:b...|c...)|\\\\(?:u...)``. At the top level ``re`` then searches with a character
    set, skipping without entering the matcher the positions where nothing can start, and each
    next byte is one dispatch. What follows is repeated per distinct prefix: keep it short."""
    branches: dict[int, list[Node]] = {}
    for language in languages:
        for byte in first_bytes(language):
            rest = derivative(language, byte)
            if rest is not None:
                branches.setdefault(byte, []).append(rest)
    parts = []
    for byte, rests in branches.items():
        if depth > 1:
            body = union_by_bytes(rests, depth - 1, nested=True)
            body = body if body in (b"", rb"\Z") else b"(?:" + body + b")"
        else:
            rest = alt(*rests)
            body = pattern(rest) if rest is not None else b""
        parts.append(_ESCAPED[byte] + body)
    if nested and any(nullable(language) for language in languages):
        parts.append(b"")  # one of them is complete here
    elif nested and any(nullable(language, at_end=True) for language in languages):
        parts.append(rb"\Z")
    return b"|".join(parts) if parts else rb"(?!)"
