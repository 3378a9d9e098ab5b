"""Retention (runner/history/retention.py): per deployment the last 50 finished runs, the last
10 failures and the latest success stay; the rest goes once older than 30 days."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from runner.history import History
from runner.history.retention import remove_run_dirs
from tests.runner.history.helpers import T0, Clock, deploy


def finished(
    history: History,
    clock: Clock,
    statuses: str,
    deployment: str | None = "nightly",
    gap: timedelta = timedelta(days=1),
) -> list[str]:
    """One run per letter, ``gap`` apart: s succeeded, f failed, t timed_out, k skipped."""
    words = {"s": "succeeded", "f": "failed", "t": "timed_out", "k": "skipped"}
    ids: list[str] = []
    for letter in statuses:
        run_id, _ = history.runs.create_triggered(deployment, "manual", run_dir=f"/runs/{len(ids)}")
        history.runs.finish(run_id, words[letter])  # type: ignore[arg-type]
        ids.append(run_id)
        clock.now += gap
    return ids


def kept(history: History, deployment: str | None = "nightly") -> set[str]:
    return {r.id for r in history.runs.list_runs(limit=10_000) if r.deployment == deployment}


def test_the_newest_fifty_and_the_protected_ones_stay(history: History, clock: Clock) -> None:
    deploy(history)
    # oldest first: 1 success, 12 failures, then 60 successes, all > 30 days old by the end
    ids = finished(history, clock, "s" + "ft" * 6 + "s" * 60)
    clock.advance(days=31)
    dropped = history.prune()
    last50 = set(ids[-50:])
    last10_failures = set(ids[3:13])
    assert kept(history) == last50 | last10_failures
    assert sorted(dropped) == sorted(Path(f"/runs/{i}") for i in (0, 1, 2, *range(13, 23)))


def test_the_latest_success_stays_however_old(history: History, clock: Clock) -> None:
    deploy(history)
    ids = finished(history, clock, "s" + "f" * 70)
    clock.advance(days=31)
    history.prune()
    assert kept(history) == {ids[0], *ids[-50:]}


def test_nothing_younger_than_thirty_days_goes(history: History, clock: Clock) -> None:
    deploy(history)
    ids = finished(history, clock, "s" * 60, gap=timedelta(hours=12))
    assert history.prune() == []  # 60 runs in 30 days: none is old enough to go
    assert kept(history) == set(ids)
    clock.advance(days=1)
    assert len(history.prune()) == 2


def test_unfinished_runs_and_other_deployments_stay(history: History, clock: Clock) -> None:
    deploy(history)
    deploy(history, "other")
    running = history.runs.claim_slot("nightly", T0)
    assert running
    ours = finished(history, clock, "k" + "s" * 55)
    theirs = finished(history, clock, "s" * 3, "other")
    plain = finished(history, clock, "s" * 52, None)
    clock.advance(days=400)
    history.prune()
    assert kept(history) == {running, *ours[-50:]}
    assert kept(history, "other") == set(theirs)
    assert kept(history, None) == set(plain[-50:])


def test_limits_are_parameters(history: History, clock: Clock) -> None:
    deploy(history)
    ids = finished(history, clock, "sfs")
    history.prune(keep_last=1, keep_failures=0, max_age=timedelta(0))
    assert kept(history) == {ids[2]}


def test_only_run_directories_under_the_root_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "r-1").mkdir(parents=True)
    (root / "r-1" / "output.log").write_text("x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "r-link").symlink_to(outside)
    removed = remove_run_dirs(
        [root / "r-1", root / "r-link", outside, root / "r-missing"], runs_root=root
    )
    assert removed == [root / "r-1"]
    assert not (root / "r-1").exists() and outside.is_dir()
