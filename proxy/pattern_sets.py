"""What a pattern tree (:mod:`proxy.patterns`) can match: emptiness, first bytes, derivatives,
prefixes, lengths, and the union of languages by leading bytes. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from proxy.patterns import END, ESCAPED, Alt, Atom, Cat, End, Lit, Node, alt, cat, lits, pattern


def nullable(node: Node, *, at_end: bool = False) -> bool:
    """Does ``node`` match the empty string? END does only ``at_end`` of the data (and then
    nothing may follow it)."""
    if isinstance(node, Lit):
        return not node.data
    if isinstance(node, End):
        return at_end
    if isinstance(node, Atom):
        return nullable(node.item, at_end=at_end)
    if isinstance(node, Alt):
        return any(nullable(i, at_end=at_end) for i in node.items)
    return all(nullable(i, at_end=at_end) for i in node.items)


def first_bytes(node: Node) -> dict[int, None]:
    """The bytes a nonempty match can start with, in order of appearance."""
    if isinstance(node, Lit):
        return {node.data[0]: None} if node.data else {}
    if isinstance(node, End):
        return {}
    if isinstance(node, Atom):
        return first_bytes(node.item)
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
    if isinstance(node, Atom):
        return derivative(node.item, byte)
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
    if isinstance(node, Atom):
        return prefixes(node.item)
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
    if isinstance(node, Atom):
        return lengths(node.item)
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
    if isinstance(node, Atom):
        return longest(node.item)
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
        parts.append(ESCAPED[byte] + body)
    if nested and any(nullable(language) for language in languages):
        parts.append(b"")  # one of them is complete here
    elif nested and any(nullable(language, at_end=True) for language in languages):
        parts.append(rb"\Z")
    return b"|".join(parts) if parts else rb"(?!)"


@lru_cache(maxsize=4096)
def shortest(node: Node) -> int:
    """The length of the shortest word of ``node``."""
    if isinstance(node, Lit):
        return len(node.data)
    if isinstance(node, End):
        return 0
    if isinstance(node, Atom):
        return shortest(node.item)
    if isinstance(node, Alt):
        return min(shortest(i) for i in node.items)
    return sum(shortest(i) for i in node.items)


@lru_cache(maxsize=4096)
def alphabet(node: Node) -> frozenset[int]:
    """Every byte that occurs in some word of ``node``."""
    if isinstance(node, Lit):
        return frozenset(node.data)
    if isinstance(node, End):
        return frozenset()
    if isinstance(node, Atom):
        return alphabet(node.item)
    return frozenset().union(*(alphabet(i) for i in node.items))
