"""The caps one run has on a shared proxy, and the accounting that keeps them (pure)."""

from __future__ import annotations

import argparse
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import UsageError
from proxy import limits
from proxy.limits import (
    MIB,
    BodyGate,
    BufferBudget,
    ConnectionSlots,
    Limits,
    LineBudget,
    Tally,
)
from proxy.reasons import Reason
from proxy.rewrite import MAX_INSPECT_BYTES


def parse(*argv: str) -> Limits:
    parser = argparse.ArgumentParser()
    limits.add_arguments(parser)
    return limits.from_args(parser.parse_args(argv))


def test_defaults():
    assert parse() == Limits()
    assert Limits() == Limits(256, 30.0, 60.0, 64 * MIB, 256 * MIB)


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (("--max-connections-per-run=0",), "--max-connections-per-run must be at least 1"),
        (("--idle-timeout=0",), "--idle-timeout must be a positive number"),
        (("--body-timeout=-1",), "--body-timeout must be a positive number"),
        (("--body-timeout=inf",), "--body-timeout must be a positive number"),
        (("--buffer-per-run=8",), "--buffer-per-run must be at least 16 (MiB)"),
        (("--buffer-per-run=64", "--buffer-total=32"), "--buffer-total must be at least"),
    ],
    ids=["no-connections", "idle-zero", "body-negative", "body-infinite", "run-under-one-body",
         "total-under-run"],
)  # fmt: skip
def test_bad_limits_fail_early_with_the_fix(argv, fix):
    with pytest.raises(UsageError, match=re.escape(fix)):
        parse(*argv)


def test_budget_per_run_and_total():
    budget = BufferBudget(per_run=10, total=15)
    assert budget.take("a", 10) is None
    full = budget.take("a", 1)
    assert full is not None and full.status == 429 and full.decision.reason == Reason.BUFFER_FULL
    assert budget.take("b", 5) is None
    assert budget.take("b", 1) is not None  # the total is spent, not b's share
    budget.give_back("a", 10)
    assert budget.held("a") == 0 and budget.held_total == 5
    assert budget.take("b", 5) is None


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 8)), max_size=40))
def test_budget_never_holds_over_its_caps_and_gives_all_back(takes):
    budget = BufferBudget(per_run=10, total=20)
    taken = []
    for run, n in takes:
        if budget.take(run, n) is None:
            taken.append((run, n))
        assert all(budget.held(r) <= 10 for r in "abc") and budget.held_total <= 20
    for run, n in taken:
        budget.give_back(run, n)
    assert budget.held_total == 0 and all(budget.held(r) == 0 for r in "abc")


@pytest.mark.parametrize(
    ("chunks", "now", "want"),
    [
        ([MIB, MIB], 1.0, None),
        ([MAX_INSPECT_BYTES, 1], 1.0, (413, Reason.TOO_LARGE)),
        ([MIB], 10.0, (408, Reason.BODY_TIMEOUT)),
        ([20 * MIB], 1.0, (413, Reason.TOO_LARGE)),
    ],
    ids=["fits", "one-byte-over-the-cap", "late", "one-chunk-over-the-cap"],
)
def test_body_gate(chunks, now, want):
    budget = BufferBudget(64 * MIB, 64 * MIB)
    gate = BodyGate(budget, "r", deadline=10.0, timeout=10.0)
    got = None
    for n in chunks:
        got = gate.feed(n, now) or got
    assert ((got.status, got.decision.reason) if got else None) == want
    gate.release()
    assert budget.held_total == 0 and not gate.receiving


def test_body_gate_takes_from_the_run_budget():
    budget = BufferBudget(16 * MIB, 64 * MIB)
    first, second = (BodyGate(budget, "r", deadline=9, timeout=9) for _ in range(2))
    assert first.feed(16 * MIB, 0) is None
    refused = second.feed(1, 0)
    assert refused is not None and refused.status == 429
    first.release()
    first.release()  # twice: given back once
    assert budget.held("r") == 0
    assert second.feed(1, 0) is None


def test_connection_slots():
    slots = ConnectionSlots(2)
    assert slots.enter("a") and slots.enter("a") and not slots.enter("a")
    assert slots.enter("b")
    slots.leave("a")
    assert slots.open("a") == 1 and slots.enter("a")


def test_tally_reports_the_first_at_once_then_counts_per_window():
    tally = Tally()
    assert tally.add("r") is True  # report 1 now
    assert [tally.add("r") for _ in range(5)] == [False] * 5
    assert tally.flush("r") == 5  # the window ends: 5 more; a new one opens
    assert tally.add("r") is False
    assert tally.flush("r") == 1
    assert tally.flush("r") == 0  # a quiet window: done
    assert tally.add("r") is True


def test_line_budget_holds_back_and_counts():
    budget = LineBudget(limit=2, interval=10.0)
    assert budget.admit(0.0) == (True, 0)
    assert budget.admit(1.0) == (True, 0) and budget.last_in_window
    assert [budget.admit(2.0 + i) for i in range(3)] == [(False, 0)] * 3
    assert budget.admit(10.0) == (True, 3)  # a new window says how many were held back
    assert budget.admit(11.0) == (True, 0)
