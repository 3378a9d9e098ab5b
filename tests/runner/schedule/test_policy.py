"""runner/schedule/policy.py with a controllable clock: plain datetimes passed in, no sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.schedule import policy
from runner.schedule.cron import parse_cron
from runner.schedule.policy import (
    MISSED_CAP,
    Timing,
    check_min_interval,
    jitter_offset,
    over_daily_cap,
    overlap_decision,
    plan_wake,
    retry_after,
    should_auto_pause,
)

NY = ZoneInfo("America/New_York")
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def hourly(**kw: object) -> Timing:
    return Timing(parse_cron("0 * * * *"), ZoneInfo("UTC"), **kw)  # type: ignore[arg-type]


ARMED = utc(2025, 1, 1)


def test_on_time_fire_and_next_wake() -> None:
    due = plan_wake(hourly(), last_slot=utc(2025, 1, 1, 8), armed_at=ARMED, now=utc(2025, 1, 1, 9))
    assert (due.fire, due.missed, due.handled_through) == (utc(2025, 1, 1, 9), None, due.fire)
    assert due.next_slot == utc(2025, 1, 1, 10)
    assert due.wake_at == utc(2025, 1, 1, 9, 0, 30)  # at least every 30 s
    assert due.reason == "on time"


def test_nothing_due_wakes_at_next_slot_when_sooner() -> None:
    now = utc(2025, 1, 1, 9, 59, 50)
    due = plan_wake(hourly(), last_slot=utc(2025, 1, 1, 9), armed_at=ARMED, now=now)
    assert (due.fire, due.missed, due.handled_through) == (None, None, None)
    assert due.wake_at == utc(2025, 1, 1, 10)


def test_restart_after_downtime_fires_one_catch_up_and_summarizes_the_rest() -> None:
    now = utc(2025, 1, 1, 14, 20)
    due = plan_wake(hourly(), last_slot=utc(2025, 1, 1, 8), armed_at=ARMED, now=now)
    assert due.fire == utc(2025, 1, 1, 14)
    assert due.reason == "catch-up of the newest missed slot, 20m late"
    assert due.missed is not None
    assert (due.missed.count, due.missed.first, due.missed.last) == (
        5, utc(2025, 1, 1, 9), utc(2025, 1, 1, 13))  # fmt: skip
    assert "only the newest is caught up" in due.missed.reason
    # The loop stores handled_through; the next wake has nothing left to do.
    again = plan_wake(hourly(), last_slot=due.handled_through, armed_at=ARMED, now=now + MIN)
    assert (again.fire, again.missed) == (None, None)


def test_catch_up_beyond_the_deadline_fires_nothing() -> None:
    timing = hourly(deadline=timedelta(minutes=10))
    now = utc(2025, 1, 1, 14, 20)
    due = plan_wake(timing, last_slot=utc(2025, 1, 1, 8), armed_at=ARMED, now=now)
    assert due.fire is None
    assert due.missed is not None and due.missed.count == 6
    assert due.missed.last == due.handled_through == utc(2025, 1, 1, 14)
    assert "beyond the 10m start deadline" in due.missed.reason


def test_catchup_none_records_only() -> None:
    due = plan_wake(
        hourly(catchup="none"), last_slot=utc(2025, 1, 1, 8), armed_at=ARMED,
        now=utc(2025, 1, 1, 10, 5),
    )  # fmt: skip
    assert due.fire is None
    assert due.missed is not None and due.missed.count == 2
    assert "catchup = none" in due.reason


def test_catchup_none_still_fires_on_time() -> None:
    due = plan_wake(
        hourly(catchup="none"), last_slot=utc(2025, 1, 1, 9), armed_at=ARMED,
        now=utc(2025, 1, 1, 10, 0, 45),
    )  # fmt: skip
    assert due.fire == utc(2025, 1, 1, 10)


def test_clock_stepped_back_never_refires() -> None:
    last = utc(2025, 1, 1, 12)
    for now in (utc(2025, 1, 1, 10, 0, 5), utc(2025, 1, 1, 11), last):
        due = plan_wake(hourly(), last_slot=last, armed_at=ARMED, now=now)
        assert (due.fire, due.missed) == (None, None)
        assert due.next_slot == utc(2025, 1, 1, 13)
    assert (
        "behind the last slot"
        in plan_wake(hourly(), last_slot=last, armed_at=ARMED, now=utc(2025, 1, 1, 11)).reason
    )


def test_clock_stepped_forward_counts_as_downtime() -> None:
    due = plan_wake(
        hourly(), last_slot=utc(2025, 1, 1, 9), armed_at=ARMED, now=utc(2025, 1, 1, 12, 0, 10)
    )
    assert due.fire == utc(2025, 1, 1, 12)
    assert due.missed is not None and due.missed.count == 2


@pytest.mark.parametrize(
    ("last_slot", "armed_at"),
    [(None, utc(2025, 1, 1, 14, 20)), (utc(2025, 1, 1, 8), utc(2025, 1, 1, 14, 20))],
    ids=["deploy", "unpause-or-edit"],
)
def test_arming_never_backfills(last_slot: datetime | None, armed_at: datetime) -> None:
    due = plan_wake(hourly(), last_slot=last_slot, armed_at=armed_at, now=utc(2025, 1, 1, 14, 30))
    assert (due.fire, due.missed) == (None, None)
    assert due.next_slot == utc(2025, 1, 1, 15)
    later = plan_wake(hourly(), last_slot=last_slot, armed_at=armed_at, now=utc(2025, 1, 1, 15))
    assert (later.fire, later.missed) == (utc(2025, 1, 1, 15), None)


def test_jitter_delays_the_fire_but_not_the_slot() -> None:
    timing = hourly(jitter=timedelta(minutes=7))
    early = plan_wake(
        timing, last_slot=utc(2025, 1, 1, 9), armed_at=ARMED, now=utc(2025, 1, 1, 10, 5)
    )
    assert early.fire is None and early.next_slot == utc(2025, 1, 1, 10)
    assert early.wake_at == utc(2025, 1, 1, 10, 5, 30)
    due = plan_wake(
        timing, last_slot=utc(2025, 1, 1, 9), armed_at=ARMED, now=utc(2025, 1, 1, 10, 7)
    )
    assert due.fire == utc(2025, 1, 1, 10)


def test_huge_backlog_is_capped() -> None:
    timing = Timing(parse_cron("* * * * *"), ZoneInfo("UTC"), deadline=HOUR)
    now = utc(2025, 1, 20, 0, 0, 10)
    due = plan_wake(timing, last_slot=utc(2025, 1, 1), armed_at=ARMED, now=now)
    assert due.fire == utc(2025, 1, 20)
    assert due.missed is not None
    assert (due.missed.count, due.missed.capped) == (MISSED_CAP, True)
    assert due.missed.last == utc(2025, 1, 19, 23, 59)
    assert due.missed.reason.startswith("more than 10000 slot(s)")


def test_newest_slot_found_far_back() -> None:
    timing = Timing(parse_cron("0 0 1 1 *"), ZoneInfo("UTC"), deadline=HOUR)
    due = plan_wake(timing, last_slot=utc(2020, 1, 1), armed_at=utc(2019, 1, 1),
                    now=utc(2025, 6, 1))  # fmt: skip
    assert due.fire is None and due.handled_through == utc(2025, 1, 1)
    assert due.missed is not None and due.missed.count == 5


def test_fall_back_fires_each_pass_once_in_utc() -> None:
    timing = Timing(parse_cron("30 * * * *"), NY)
    last, fired = utc(2025, 11, 2, 4, 30), []
    now = last
    while now < utc(2025, 11, 2, 8):
        now += timedelta(seconds=30)
        due = plan_wake(timing, last_slot=last, armed_at=ARMED, now=now)
        if due.fire is not None:
            fired.append(due.fire)
        last = due.handled_through or last
    assert [f"{s:%H:%M}" for s in fired] == ["05:30", "06:30", "07:30"]


@given(name=st.text(max_size=40), max_s=st.integers(0, 7200), period_s=st.integers(1, 86400))
def test_jitter_bounds_and_stability(name: str, max_s: int, period_s: int) -> None:
    max_jitter, period = timedelta(seconds=max_s), timedelta(seconds=period_s)
    offset = jitter_offset(name, max_jitter, period)
    assert timedelta(0) <= offset <= min(max_jitter, period / 2)
    assert offset == jitter_offset(name, max_jitter, period)


def test_jitter_differs_by_name() -> None:
    offsets = {jitter_offset(f"job-{i}", HOUR, timedelta(days=1)) for i in range(20)}
    assert len(offsets) > 15


@pytest.mark.parametrize(
    ("expr", "min_interval", "allowed", "says"),
    [
        ("*/7 * * * *", timedelta(minutes=5), False,
         '"*/7 * * * *" has a 4m gap (00:56 to 01:00); min_interval is 5m: use a coarser '
         'cron, or set min_interval = "4m"'),
        ("*/7 * * * *", timedelta(minutes=4), True, "smallest gap 4m"),
        ("*/5 * * * *", timedelta(minutes=5), True, "smallest gap 5m"),
        ("* * * * *", timedelta(minutes=5), False, 'set min_interval = "1m"'),
        ("0,59 * * * *", timedelta(minutes=5), False, "has a 1m gap (00:59 to 01:00)"),
    ],
    ids=["step-7-refused", "step-7-with-4m", "step-5", "every-minute", "top-of-hour-pair"],
)  # fmt: skip
def test_min_interval(expr: str, min_interval: timedelta, allowed: bool, says: str) -> None:
    verdict = check_min_interval(parse_cron(expr), min_interval)
    assert verdict.allowed is allowed
    assert says in verdict.reason


def test_daily_cap_is_a_rolling_24_hours() -> None:
    now = utc(2025, 1, 2, 12)
    starts = [utc(2025, 1, 1, 11), utc(2025, 1, 1, 13), utc(2025, 1, 2, 1), utc(2025, 1, 2, 11)]
    assert not over_daily_cap(starts, now, None)
    assert not over_daily_cap(starts, now, 4)
    assert over_daily_cap(starts, now, 3)
    assert retry_after(starts, now, 4) == 0
    assert retry_after(starts, now, 3) == 3600  # the 13:00 start leaves the window at 13:00
    assert retry_after(starts, now, 1) == 23 * 3600  # all three must leave: the last at 11:00


@pytest.mark.parametrize(
    ("overlap", "running", "queued", "action"),
    [
        ("skip", 0, 0, "start"), ("skip", 1, 0, "skip"),
        ("queue_one", 0, 0, "start"), ("queue_one", 1, 0, "queue"), ("queue_one", 1, 1, "skip"),
        ("allow", 0, 0, "start"), ("allow", 3, 0, "start"), ("allow", 4, 0, "skip"),
    ],
    ids=lambda v: str(v),
)  # fmt: skip
def test_overlap(overlap: policy.Overlap, running: int, queued: int, action: str) -> None:
    decision = overlap_decision(overlap, running, queued)
    assert decision.action == action
    assert decision.reason


def test_overlap_skip_says_why() -> None:
    assert overlap_decision("skip", 1, 0).reason == (
        "the previous run is still running (overlap = skip)"
    )


@pytest.mark.parametrize(
    ("failures", "threshold", "pause"),
    [(0, 5, False), (4, 5, False), (5, 5, True), (6, 5, True), (1, 1, True)],
    ids=lambda v: str(v),
)
def test_auto_pause(failures: int, threshold: int, pause: bool) -> None:
    assert should_auto_pause(failures, threshold) is pause


def test_default_deadline() -> None:
    assert policy.default_deadline(timedelta(minutes=15)) == timedelta(minutes=15)
    assert policy.default_deadline(timedelta(days=1)) == HOUR
