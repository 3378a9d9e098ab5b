"""Range stripping and the exact Basic token the proxy made (proxy.fragments)."""

from __future__ import annotations

import base64

import pytest

from proxy.engine import LEARNED_LIMIT, RunView
from proxy.fragments import basic_token_pairs, without_range
from proxy.runs import parse_run
from proxy.substitute import Swap, swap_header

VALUE, PH = "real-value-0123456789", "ccph_" + "C" * 26


def test_without_range_drops_range_and_if_range_only():
    head = ((b"Range", b"bytes=0-0"), (b"if-range", b'"x"'), (b"Accept", b"*/*"))
    assert without_range(head) == ((b"Accept", b"*/*"),)
    untouched = ((b"Accept", b"*/*"),)
    assert without_range(untouched) is untouched


@pytest.mark.parametrize("user", ["", "u", "us", "abc"])
def test_basic_token_pair_maps_the_token_made_to_the_placeholders(user):
    swaps = [Swap("T", PH, VALUE, ("basic",))]
    sent = "Basic " + base64.b64encode(f"{user}:{PH}".encode()).decode()
    made, used = swap_header(sent, swaps)
    assert used == {"T"}
    before, after = ((b"Authorization", sent.encode()),), ((b"Authorization", made.encode()),)
    [(token, back)] = basic_token_pairs(before, after, swaps)
    assert base64.b64decode(token) == f"{user}:{VALUE}".encode()
    assert back == sent.split()[1].encode()


def test_no_pair_for_an_unchanged_or_foreign_header():
    swaps = [Swap("T", PH, VALUE, ("header", "basic"))]
    same = ((b"Authorization", b"Basic dXNlcjpwYXNz"),)
    assert basic_token_pairs(same, same, swaps) == ()
    whole = ((b"Authorization", f"Basic {VALUE}".encode()),)  # a header swap of a whole token
    assert basic_token_pairs(((b"Authorization", f"Basic {PH}".encode()),), whole, swaps) == ()


def test_a_run_view_learns_tokens_up_to_a_limit_and_keeps_its_values():
    view = RunView(run=parse_run({"run_id": "r-frag1"}), scrub_pairs=((b"value", b"ph"),))
    for i in range(LEARNED_LIMIT + 2):
        view.learn([(b"token%d" % i, b"back%d" % i)])
    view.learn([(b"token3", b"back3")])  # known: nothing changes
    last = LEARNED_LIMIT + 1
    assert view.scrub_pairs[0] == (b"value", b"ph")
    assert len(view.scrub_pairs) == 1 + LEARNED_LIMIT
    assert view.scrub_pairs[-1] == (b"token%d" % last, b"back%d" % last)
