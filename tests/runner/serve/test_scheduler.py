"""runner/serve/scheduler.py: the loop, with a real history, supervisor and fake children, driven
by ``tick(now)`` on a clock the test moves (scheduler.md, "Firing" and "Tests that must exist").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from runner.serve.scheduler import Scheduler
from tests.runner.serve.fakes import WAIT_S, Clock, Rig, at, job_toml, open_rig


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rig(tmp_path: Path, clock: Clock) -> Iterator[Rig]:
    with open_rig(tmp_path / "home", clock) as r:
        yield r


def fired(rig: Rig, when: datetime) -> str:
    """Tick at ``when`` and return the one run that fired for it."""
    before = {r.id for r in rig.runs()}
    rig.tick(when)
    new = [r for r in rig.runs() if r.id not in before and r.status != "missed"]
    assert len(new) == 1, new
    return new[0].id


def test_restart_after_downtime_runs_one_catch_up_and_records_one_missed_row(rig: Rig) -> None:
    rig.deploy(job_toml())  # armed at 10:10
    rig.tick(at(10, 10))
    assert rig.runs() == []
    restarted = rig.new_scheduler()  # the service was down from 10:10 to 13:10
    rig.tick(at(13, 10), restarted)
    rig.tick(at(13, 10, 1), restarted)
    runs = rig.runs()
    assert [(r.status, r.slot) for r in runs if r.status != "missed"] == [("running", at(13))]
    [missed] = [r for r in runs if r.status == "missed"]
    assert (missed.count, missed.missed_first, missed.missed_last) == (2, at(11), at(12))
    assert rig.kinds() == ["missed"]
    assert rig.notices[0][1]["run_id"] == missed.id


def test_clock_stepped_backwards_never_refires_a_slot(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.end(fired(rig, at(11, 0, 5)))
    rig.tick(at(10, 30))  # stepped back half an hour
    rig.tick(at(11, 0, 5))  # and the slot's time again
    rig.tick(at(11, 0, 5), rig.new_scheduler())  # even for a scheduler without memory
    assert rig.slots() == [at(11)]
    rig.end(fired(rig, at(12, 0, 5)))
    assert rig.slots() == [at(11), at(12)]
    assert all(r.status == "succeeded" for r in rig.runs())


def test_clock_stepped_forward_counts_as_downtime(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.end(fired(rig, at(11, 0, 5)))
    rig.tick(at(15, 0, 5))  # four hours later, same process
    runs = rig.runs()
    assert [(r.status, r.slot) for r in runs if r.status != "missed"] == [
        ("succeeded", at(11)),
        ("running", at(15)),
    ]
    [missed] = [r for r in runs if r.status == "missed"]
    assert (missed.count, missed.missed_first, missed.missed_last) == (3, at(12), at(14))


def test_pause_and_unpause_do_not_backfill(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.end(fired(rig, at(11, 0, 5)))
    rig.clock.now = at(11, 10)
    rig.actions.pause("nightly", "maintenance")
    for hour in (12, 13):
        rig.tick(at(hour, 0, 5))
    rig.clock.now = at(13, 30)
    rig.actions.unpause("nightly")
    rig.tick(at(13, 30))
    assert rig.slots() == [at(11)]
    rig.tick(at(14, 0, 5))
    assert rig.slots() == [at(11), at(14)]
    assert not [r for r in rig.runs() if r.status in ("missed", "skipped")]


def test_schedule_edit_does_not_backfill(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.end(fired(rig, at(11, 0, 5)))
    rig.clock.now = at(12, 45)  # the 12:00 slot of the old schedule passed unseen
    answer = rig.deploy(job_toml(cron="30 * * * *"))
    assert (answer["created"], answer["config_version"]) == (False, 2)
    rig.tick(at(12, 45))  # neither 12:00 (old) nor 12:30 (new) is fired or missed
    assert rig.slots() == [at(11)]
    run_id = fired(rig, at(13, 30, 5))
    assert rig.run(run_id).config_version == 2
    assert rig.slots() == [at(11), at(13, 30)]
    assert not [r for r in rig.runs() if r.status in ("missed", "skipped")]


def test_overlap_skip_records_a_skipped_row(rig: Rig) -> None:
    rig.deploy(job_toml())
    first = fired(rig, at(11, 0, 5))
    second = fired(rig, at(12, 0, 5))  # the first still runs
    skipped = rig.run(second)
    assert (skipped.status, skipped.slot) == ("skipped", at(12))
    assert skipped.reason == "overlap"
    assert rig.run(first).status == "running"
    assert rig.end(first).status == "succeeded"
    assert second not in rig.children


def test_queue_one_keeps_one_waiting_run(rig: Rig) -> None:
    rig.deploy(job_toml(overlap="queue_one"))
    first = fired(rig, at(11, 0, 5))
    waiting = fired(rig, at(12, 0, 5))
    third = fired(rig, at(13, 0, 5))
    assert [rig.run(r).status for r in (first, waiting, third)] == [
        "running",
        "pending",
        "skipped",
    ]
    assert rig.run(third).reason == "overlap"
    rig.end(first)
    rig.wait_until(lambda: rig.run(waiting).status == "running")
    assert rig.end(waiting).status == "succeeded"


def test_allow_runs_concurrently_up_to_the_hard_cap(rig: Rig) -> None:
    rig.deploy(job_toml(cron="*/5 * * * *", overlap="allow"))
    ids = [fired(rig, at(11, minute, 5)) for minute in (0, 5, 10, 15, 20)]
    assert [rig.run(r).status for r in ids] == ["running"] * 4 + ["skipped"]
    assert rig.run(ids[-1]).reason == "overlap"
    rig.end(ids[0])
    assert rig.run(fired(rig, at(11, 25, 5))).status == "running"  # room again


def test_two_schedulers_on_one_database_fire_each_slot_once(
    rig: Rig, tmp_path: Path, clock: Clock
) -> None:
    rig.deploy(job_toml())
    with open_rig(tmp_path / "home", clock, rig.children) as other:
        order = [(rig, other), (other, rig), (rig, other)]
        for hour, pair in zip((11, 12, 13), order, strict=True):
            for each in pair:
                each.tick(at(hour, 0, 5))
            [run] = [r for r in rig.runs() if r.slot == at(hour)]
            owner = rig if rig.supervisor.running("nightly") else other
            owner.end(run.id)
        for each in (other, rig):  # both come back after a long pause
            each.tick(at(17, 10))
        runs = rig.runs()
        assert rig.slots() == [at(11), at(12), at(13), at(17)]
        assert [(r.count, r.missed_first) for r in runs if r.status == "missed"] == [(3, at(14))]
        assert [k for k in rig.kinds() + other.kinds() if k != "success"] == ["missed"]


def test_daily_cap_skips_with_its_reason(rig: Rig) -> None:
    rig.deploy(job_toml(daily_cap=2))
    for hour in (11, 12):
        rig.end(fired(rig, at(hour, 0, 5)))
    over = rig.run(fired(rig, at(13, 0, 5)))
    assert (over.status, over.reason) == ("skipped", "daily_cap")
    assert over.id not in rig.children


def test_auto_pause_after_consecutive_failures(rig: Rig) -> None:
    rig.deploy(job_toml(pause_after_failures=2))
    first = rig.end(fired(rig, at(11, 0, 5)), status=None, exit_code=2)  # died before its run
    assert (first.status, first.reason) == ("error", "the run exited 2 before it began")
    assert rig.history.deployments.get("nightly").status == "active"
    second = rig.end(fired(rig, at(12, 0, 5)), status="failed", exit_code=1)
    assert second.status == "failed"
    rig.wait_until(lambda: "auto_pause" in rig.kinds())
    dep = rig.history.deployments.get("nightly")
    assert (dep.status, dep.paused_reason) == ("paused", "error")
    assert "2 consecutive failures" in (dep.note or "")
    assert rig.kinds() == ["failure", "failure", "auto_pause"]
    rig.tick(at(13, 0, 5))
    assert rig.slots() == [at(11), at(12)]


def test_success_resets_the_failure_streak(rig: Rig) -> None:
    rig.deploy(job_toml(pause_after_failures=2))
    for hour, status in ((11, "failed"), (12, "succeeded"), (13, "failed")):
        rig.end(fired(rig, at(hour, 0, 5)), status=status, exit_code=status == "failed")
    assert rig.history.deployments.get("nightly").status == "active"
    assert rig.kinds() == ["failure", "success", "failure"]


def test_the_wake_comes_at_the_next_slot_or_within_30_seconds(rig: Rig) -> None:
    rig.deploy(job_toml())
    assert rig.tick(at(10, 59, 50)) == 10.0
    assert rig.tick(at(10, 10)) == 30.0


def test_run_wakes_on_poke(rig: Rig, clock: Clock) -> None:
    calls: list[threading.Event] = [threading.Event() for _ in range(3)]

    def watched() -> datetime:
        next(e for e in calls if not e.is_set()).set()
        return clock()

    scheduler = Scheduler(rig.history, rig.supervisor, rig.book, clock=watched)
    stop = threading.Event()
    loop = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert calls[0].wait(WAIT_S)
        assert not calls[1].is_set()  # nothing is due for 30 s: it waits
        scheduler.poke()
        assert calls[1].wait(WAIT_S)  # and wakes at once when poked
    finally:
        stop.set()
        scheduler.poke()
        loop.join(WAIT_S)
    assert not loop.is_alive()
