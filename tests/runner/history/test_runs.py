"""Runs (runner/history/runs.py): each trigger's uniqueness holds across threads and processes,
skips collapse, a restart interrupts what was running, listings use their indexes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from runner.history import History
from runner.history.errors import RunNotFound
from tests.runner.history.helpers import T0, Clock, deploy

ROOT = Path(__file__).resolve().parents[3]
SLOTS = [T0 + timedelta(minutes=i) for i in range(40)]


def test_a_slot_is_claimed_once(history: History) -> None:
    deploy(history)
    first = history.runs.claim_slot("nightly", T0, config_version=1)
    assert first is not None
    assert history.runs.claim_slot("nightly", T0) is None
    run = history.runs.get_run(first)
    assert (run.status, run.trigger, run.slot, run.scheduled_at, run.actor) == (
        "pending", "schedule", T0, T0, "scheduler",
    )  # fmt: skip


def test_two_connections_in_threads_fire_each_slot_once(db_path: Path, history: History) -> None:
    deploy(history)
    won: list[str] = []
    barrier = threading.Barrier(2)

    def scheduler() -> None:
        with History.open(db_path) as mine:
            barrier.wait()
            won.extend(r for slot in SLOTS if (r := mine.runs.claim_slot("nightly", slot)))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == len(SLOTS)
    assert sorted(r.slot for r in history.runs.list_runs(limit=1000)) == SLOTS  # type: ignore[type-var]


RACER = """
import sys
from datetime import datetime, timedelta, UTC
from runner.history import History
t0 = datetime.fromisoformat(sys.argv[2])
with History.open(__import__("pathlib").Path(sys.argv[1])) as h:
    sys.stdin.readline()  # all start together
    for i in range(int(sys.argv[3])):
        if h.runs.claim_slot("nightly", t0 + timedelta(minutes=i)):
            print(i)
"""


def test_two_processes_fire_each_slot_once(db_path: Path, history: History) -> None:
    deploy(history)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", RACER, str(db_path), T0.isoformat(), str(len(SLOTS))]
    procs = [
        subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    outs = [p.communicate("go\n", timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    claimed = sorted(int(line) for out in outs for line in out.split())
    assert claimed == list(range(len(SLOTS)))
    assert len(history.runs.list_runs("nightly", limit=1000)) == len(SLOTS)


def test_an_idempotency_key_or_delivery_repeat_returns_the_same_run(history: History) -> None:
    deploy(history)
    run_id, created = history.runs.create_triggered(
        "nightly", "api", actor="token", idempotency_key="k1"
    )
    assert created
    assert history.runs.create_triggered("nightly", "api", idempotency_key="k1") == (run_id, False)
    assert history.runs.create_triggered("nightly", "api", idempotency_key="k2")[1]
    assert history.runs.create_triggered("nightly", "api")[1]  # no key: always a new run
    assert history.runs.create_triggered("nightly", "api")[1]
    hook, created = history.runs.create_triggered("nightly", "webhook", delivery_id="d-1")
    assert created
    assert history.runs.create_triggered("nightly", "webhook", delivery_id="d-1") == (hook, False)
    # the same key under another trigger is another run
    assert history.runs.create_triggered("nightly", "webhook", delivery_id="k1")[1]


def test_a_plain_cli_run_has_no_deployment(history: History) -> None:
    run_id, created = history.runs.create_triggered(None, "manual", actor="cli", run_dir="/d")
    run = history.runs.get_run(run_id)
    assert created and (run.deployment, run.trigger, run.actor, run.run_dir) == (
        None, "manual", "cli", "/d",
    )  # fmt: skip


def test_a_run_moves_on_and_ends_once(history: History, clock: Clock) -> None:
    deploy(history)
    run_id = history.runs.claim_slot("nightly", T0)
    assert run_id is not None
    started = clock.advance(seconds=2)
    assert history.runs.mark_running(run_id, run_dir="/runs/x")
    assert not history.runs.mark_running(run_id)
    assert [r.id for r in history.runs.running_runs("nightly")] == [run_id]
    ended = clock.advance(minutes=1)
    assert history.runs.finish(run_id, "failed", exit_code=3, error_class="JobFailed")
    assert not history.runs.finish(run_id, "succeeded")
    run = history.runs.get_run(run_id)
    assert (run.status, run.exit_code, run.started_at, run.finished_at, run.run_dir) == (
        "failed", 3, started, ended, "/runs/x",
    )  # fmt: skip
    assert history.runs.running_runs() == []
    with pytest.raises(ValueError, match="not an end"):
        history.runs.finish(run_id, "running")


def test_skips_collapse_while_they_are_the_newest_row(history: History, clock: Clock) -> None:
    deploy(history)
    first = history.runs.record_skip("nightly", "overlap", slot=SLOTS[0])
    clock.advance(minutes=1)
    assert history.runs.record_skip("nightly", "overlap", slot=SLOTS[1]) == first
    assert history.runs.record_skip("nightly", "overlap", slot=SLOTS[2]) == first
    other = history.runs.record_skip("nightly", "daily_cap", slot=SLOTS[3])
    assert other != first
    again = history.runs.record_skip("nightly", "overlap", slot=SLOTS[4])
    assert again not in (first, other)
    row = history.runs.get_run(first)
    assert (row.status, row.count, row.missed_first, row.missed_last, row.slot) == (
        "skipped", 3, SLOTS[0], SLOTS[2], None,
    )  # fmt: skip
    assert row.finished_at == clock.now
    # a skipped slot is not claimed: claim_slot and advance_last_slot decide who handles it
    assert history.runs.claim_slot("nightly", SLOTS[0]) is not None


def test_missed_rows_collapse_and_extend_their_range(history: History) -> None:
    deploy(history)
    first = history.runs.record_missed("nightly", 5, SLOTS[0], SLOTS[4])
    assert history.runs.record_missed("nightly", 2, SLOTS[5], SLOTS[6]) == first
    row = history.runs.get_run(first)
    assert (row.status, row.reason, row.count, row.missed_first, row.missed_last) == (
        "missed", "downtime", 7, SLOTS[0], SLOTS[6],
    )  # fmt: skip
    history.runs.claim_slot("nightly", SLOTS[7])
    assert history.runs.record_missed("nightly", 1, SLOTS[8], SLOTS[8]) != first


def test_a_restart_interrupts_what_was_unfinished(history: History, clock: Clock) -> None:
    deploy(history)
    pending = history.runs.claim_slot("nightly", SLOTS[0])
    running = history.runs.claim_slot("nightly", SLOTS[1])
    done = history.runs.claim_slot("nightly", SLOTS[2])
    assert pending and running and done
    history.runs.mark_running(running)
    history.runs.mark_running(done)
    history.runs.finish(done, "succeeded", exit_code=0)
    assert [r.id for r in history.runs.pending_runs("nightly")] == [pending]
    now = clock.advance(hours=1)
    gone = history.runs.interrupt_unfinished()
    assert [r.id for r in gone] == [pending, running]
    assert {(r.status, r.reason, r.finished_at) for r in gone} == {("error", "interrupted", now)}
    assert history.runs.get_run(done).status == "succeeded"
    assert history.runs.interrupt_unfinished() == []


def test_starts_in_a_rolling_day_and_failures_in_a_row(history: History, clock: Clock) -> None:
    deploy(history)
    for i, status in enumerate(["succeeded", "failed", "timed_out", "error"]):
        run_id = history.runs.claim_slot("nightly", SLOTS[i])
        assert run_id
        history.runs.finish(run_id, status)  # type: ignore[arg-type]
        clock.advance(hours=8)
    history.runs.record_skip("nightly", "daily_cap")
    assert history.runs.recent_starts("nightly", clock.now - timedelta(hours=24)) == 3
    assert history.runs.consecutive_failures("nightly") == 3
    assert history.runs.consecutive_failures("other") == 0


def test_listings_filter_and_page_newest_first(history: History) -> None:
    deploy(history, "a")
    deploy(history, "b")
    ids = []
    for i, slot in enumerate(SLOTS[:6]):
        run_id = history.runs.claim_slot("ab"[i % 2], slot)
        assert run_id
        history.runs.finish(run_id, "succeeded" if i < 4 else "failed")
        ids.append(run_id)
    assert [r.id for r in history.runs.list_runs()] == ids[::-1]
    assert [r.id for r in history.runs.list_runs("a")] == ids[::2][::-1]
    assert [r.id for r in history.runs.list_runs(status="failed")] == [ids[5], ids[4]]
    assert [r.id for r in history.runs.list_runs("b", "succeeded")] == [ids[3], ids[1]]
    page = history.runs.list_runs(limit=2)
    assert [r.id for r in history.runs.list_runs(limit=2, before=page[-1].id)] == [ids[3], ids[2]]


def test_runs_are_found_by_id_or_a_unique_prefix(history: History) -> None:
    ids = iter(["r-00000000000000a1", "r-00000000000000a2", "r-00000000000000b1"])
    with History.open(history.db.path, new_id=lambda: next(ids)) as h:
        for _ in range(3):
            h.runs.create_triggered(None, "manual", actor="cli")
        assert h.runs.get_run("r-00000000000000b").id == "r-00000000000000b1"
        with pytest.raises(RunNotFound, match="more than one"):
            h.runs.get_run("r-00000000000000a")
        with pytest.raises(RunNotFound, match="runs list"):
            h.runs.get_run("r-ffff")


@pytest.mark.parametrize(
    ("deployment", "status", "index"),
    [
        ("bench-1", "failed", "runs_deployment_status"),
        ("bench-1", None, "runs_deployment"),
        (None, "failed", "runs_status"),
    ],
    ids=["deployment-and-status", "deployment", "status"],
)
def test_listings_use_an_index_and_no_sort(
    history: History, deployment: str | None, status: str | None, index: str
) -> None:
    from tests.runner.history.bulk import fill

    fill(history, 3, 3000)
    statements: list[str] = []
    with history.db.read() as conn:
        conn.set_trace_callback(statements.append)  # the real query, its values bound
    try:
        runs = history.runs.list_runs(deployment, status, limit=50)  # type: ignore[arg-type]
    finally:
        with history.db.read() as conn:
            conn.set_trace_callback(None)
    assert len(runs) == 50
    assert [r.seq for r in runs] == sorted((r.seq for r in runs), reverse=True)
    (query,) = [s for s in statements if s.startswith("SELECT * FROM runs")]
    with history.db.read() as conn:
        plan = " | ".join(r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert f"USING INDEX {index} " in plan + " " and "TEMP B-TREE" not in plan, plan
