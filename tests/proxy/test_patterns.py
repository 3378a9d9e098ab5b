"""The small language algebra: each compiled form agrees with brute force on random trees."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pattern_sets import (
    lengths,
    longest,
    partials,
    prefix_free,
    union_by_bytes,
)
from proxy.patterns import (
    END,
    EPS,
    Lit,
    Node,
    alt,
    cat,
    pattern,
)

ALPHABET = b"ab\\%"
lits = st.binary(min_size=1, max_size=3).map(lambda b: Lit(bytes(ALPHABET[x % 4] for x in b)))


def _trees(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    parts = st.lists(children, min_size=1, max_size=3)
    return st.one_of(parts.map(lambda xs: alt(*xs) or EPS), parts.map(lambda xs: cat(*xs) or EPS))


trees = st.recursive(lits, _trees, max_leaves=6)


def words(node: Node) -> set[bytes]:
    if isinstance(node, Lit):
        return {node.data}
    if node is END:
        return {b""}
    if node.__class__.__name__ == "Alt":
        return set().union(*(words(i) for i in node.items))  # type: ignore[union-attr]
    out = {b""}
    for item in node.items:  # type: ignore[union-attr]
        out = {a + b for a in out for b in words(item)}
    return out


@settings(deadline=None)
@given(trees)
def test_pattern_lengths_and_prefix_freedom_agree_with_the_words(node: Node) -> None:
    ws = words(node)
    compiled = re.compile(pattern(node))
    assert all(compiled.fullmatch(w) for w in ws)
    assert lengths(node) == {len(w) for w in ws}
    assert longest(node) == max(len(w) for w in ws)
    nonempty = {w for w in ws if w}
    free = not any(a != b and b.startswith(a) for a in nonempty for b in nonempty)
    if b"" not in ws:
        assert prefix_free(node) == free


@settings(deadline=None)
@given(st.lists(trees, min_size=1, max_size=3), st.binary(max_size=8), st.integers(1, 3))
def test_union_by_bytes_finds_where_any_language_starts(
    nodes: list[Node], data: bytes, depth: int
) -> None:
    data = bytes(ALPHABET[x % 4] for x in data)
    starts = {w for n in nodes for w in words(n) if w}
    compiled = re.compile(union_by_bytes(nodes, depth))
    for pos in range(len(data) + 1):
        expected = any(data.startswith(w, pos) for w in starts)
        assert (compiled.match(data, pos) is not None) == expected


@settings(deadline=None)
@given(st.lists(trees, min_size=1, max_size=3), st.binary(min_size=1, max_size=8))
def test_partials_are_what_more_data_could_complete(units: list[Node], tail: bytes) -> None:
    tail = bytes(ALPHABET[x % 4] for x in tail)
    node = cat(*units)
    assert node is not None
    ws = words(node)
    extendable = any(w.startswith(tail) and w != tail for w in ws)
    partial = partials(units)
    assert partial is not None
    assert (re.compile(pattern(partial)).match(tail) is not None) == extendable
