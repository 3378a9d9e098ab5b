"""Scheduling decisions, pure: the time is passed in, nothing is read or written.

- ``plan_wake(timing, last_slot=, armed_at=, now=) -> Due``: on each wake of the loop, the slot
  to fire (if any), the slots to record as one ``missed`` row, the next slot and when to wake.
  Only slots after both ``last_slot`` and ``armed_at`` count: deploy, unpause and schedule edits
  set ``armed_at`` to now and never backfill; a clock stepped back fires nothing until it passes
  ``last_slot`` again; a clock stepped forward is downtime. A slot is due at slot + jitter.
  The newest due slot fires if it is on time (``ON_TIME``) or, with ``catchup = "latest"``,
  within the start deadline; every other due slot is missed (counted up to ``MISSED_CAP``).
- ``jitter_offset(name, max_jitter, period)``: a fixed offset from the name's sha256, within
  [0, min(max_jitter, period / 2)].
- ``check_min_interval(cron, min_interval)``, ``over_daily_cap``, ``retry_after``: limits.
- ``overlap_decision(policy, running, queued)``: start, queue or skip, with the reason.
- ``should_auto_pause(consecutive_failures, threshold)``.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from runner.schedule.cron import Cron, slots_after, tightest

Catchup = Literal["latest", "none"]
Overlap = Literal["skip", "queue_one", "allow"]
Action = Literal["start", "queue", "skip"]

ON_TIME: Final = timedelta(seconds=60)
WAKE_EVERY: Final = timedelta(seconds=30)
MISSED_CAP: Final = 10_000
DEADLINE_CAP: Final = timedelta(hours=1)
MIN_INTERVAL: Final = timedelta(minutes=5)
HARD_CAP: Final = 4
PAUSE_AFTER: Final = 5
DAY: Final = timedelta(hours=24)
REFERENCE: Final = datetime(2025, 1, 1, tzinfo=UTC)  # limits don't depend on the load time
_UTC: Final = ZoneInfo("UTC")


@dataclass(frozen=True)
class Timing:
    """What ``plan_wake`` needs of a deployment; ``jitter`` is its offset (``jitter_offset``)."""

    cron: Cron
    zone: ZoneInfo
    jitter: timedelta = timedelta(0)
    deadline: timedelta = DEADLINE_CAP
    catchup: Catchup = "latest"


@dataclass(frozen=True)
class Missed:
    """Slots that will not run, as one summary row; ``capped``: there were more than ``count``."""

    count: int
    first: datetime
    last: datetime
    capped: bool
    reason: str


@dataclass(frozen=True)
class Due:
    """One wake's decision. ``handled_through`` is the newest slot decided (fired or missed):
    store it as the new last slot. ``next_slot`` is the first slot not yet due."""

    fire: datetime | None
    missed: Missed | None
    handled_through: datetime | None
    next_slot: datetime | None
    wake_at: datetime
    reason: str


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class OverlapDecision:
    action: Action
    reason: str


def default_deadline(period: timedelta) -> timedelta:
    """The start deadline when none is set: the smaller of the period and an hour."""
    return min(period, DEADLINE_CAP)


def jitter_offset(name: str, max_jitter: timedelta, period: timedelta) -> timedelta:
    """A whole number of seconds in [0, min(max_jitter, period / 2)], the same for a name."""
    cap = int(min(max_jitter, period / 2).total_seconds())
    if cap <= 0:
        return timedelta(0)
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (cap + 1))


def plan_wake(
    timing: Timing, *, last_slot: datetime | None, armed_at: datetime, now: datetime
) -> Due:
    """What to do at ``now`` (all instants aware; compared in UTC)."""
    floor = armed_at if last_slot is None else max(last_slot, armed_at)
    floor, now = floor.astimezone(UTC), now.astimezone(UTC)
    newest = _newest_two(timing, floor, now - timing.jitter)
    after = newest[-1] if newest else floor
    next_slot = next(slots_after(timing.cron, timing.zone, after, 1), None)
    wake_at = now + WAKE_EVERY
    if next_slot is not None:
        wake_at = max(now, min(wake_at, next_slot + timing.jitter))
    if not newest:
        why = "clock is behind the last slot" if now < floor else "nothing due"
        return Due(None, None, None, next_slot, wake_at, why)
    slot = newest[-1]
    late = now - (slot + timing.jitter)
    count, first, capped = _count(timing, floor, slot)
    on_time = late <= ON_TIME
    fire = on_time or (timing.catchup == "latest" and late <= timing.deadline)
    if fire:
        why = "on time" if on_time else f"catch-up of the newest missed slot, {_span(late)} late"
    elif timing.catchup == "none":
        why = f"{_span(late)} late and catchup = none"
    else:
        why = f"{_span(late)} late, beyond the {_span(timing.deadline)} start deadline"
    missed = None
    if count > (1 if fire else 0):
        last = newest[0] if fire else slot
        n = count - 1 if fire and not capped else count
        more = "more than " if capped else ""
        reason = f"{more}{n} slot(s) not run: the scheduler was down or the clock jumped; " + (
            "only the newest is caught up" if fire else why
        )
        missed = Missed(n, first or last, last, capped, reason)
    return Due(slot if fire else None, missed, slot, next_slot, wake_at, why)


def _newest_two(timing: Timing, floor: datetime, upto: datetime) -> list[datetime]:
    """The last (up to) two slots in (floor, upto], looking back in doubling windows."""
    span = timedelta(hours=1)
    while True:
        start = floor if span >= upto - floor else upto - span
        found: deque[datetime] = deque(maxlen=2)
        for slot in slots_after(timing.cron, timing.zone, start):
            if slot > upto:
                break
            found.append(slot)
        if len(found) == 2 or start <= floor:
            return list(found)
        span *= 2


def _count(timing: Timing, floor: datetime, upto: datetime) -> tuple[int, datetime | None, bool]:
    """How many slots in (floor, upto] (at most MISSED_CAP), the first, and whether capped."""
    count, first = 0, None
    for slot in slots_after(timing.cron, timing.zone, floor):
        if slot > upto:
            break
        if count == MISSED_CAP:
            return count, first, True
        first = first or slot
        count += 1
    return count, first, False


def check_min_interval(
    cron: Cron,
    min_interval: timedelta,
    *,
    zone: ZoneInfo = _UTC,
    around: datetime = REFERENCE,
) -> Verdict:
    """Whether the smallest real gap between ``cron``'s slots is at least ``min_interval``."""
    start, end = tightest(cron, zone, around)
    gap = end - start
    if gap >= min_interval:
        return Verdict(True, f"smallest gap {_span(gap)}")
    at = f"{start.astimezone(zone):%H:%M} to {end.astimezone(zone):%H:%M}"
    return Verdict(
        False,
        f'"{cron.source}" has a {_span(gap)} gap ({at}); min_interval is '
        f'{_span(min_interval)}: use a coarser cron, or set min_interval = "{_span(gap)}"',
    )


def _window(recent_starts: Sequence[datetime], now: datetime) -> list[datetime]:
    return sorted(s for s in recent_starts if s > now - DAY)


def over_daily_cap(recent_starts: Sequence[datetime], now: datetime, cap: int | None) -> bool:
    """Whether ``cap`` runs already started in the 24 hours before ``now``."""
    return cap is not None and len(_window(recent_starts, now)) >= cap


def retry_after(recent_starts: Sequence[datetime], now: datetime, cap: int | None) -> int:
    """Whole seconds until one more run fits under ``cap`` (0: it fits now)."""
    window = _window(recent_starts, now)
    excess = 0 if cap is None else len(window) - cap + 1
    if excess <= 0:
        return 0
    return max(1, math.ceil((window[excess - 1] + DAY - now).total_seconds()))


def overlap_decision(
    policy: Overlap, running: int, queued: int, hard_cap: int = HARD_CAP
) -> OverlapDecision:
    """Start, queue or skip a run given how many runs are running and waiting."""
    if policy == "allow":
        if running < hard_cap:
            return OverlapDecision("start", f"{running} running, under the cap of {hard_cap}")
        return OverlapDecision("skip", f"{running} runs running, the cap for overlap = allow")
    if running == 0:
        return OverlapDecision("start", "no run is running")
    if policy == "queue_one" and queued == 0:
        return OverlapDecision("queue", "a run is running; this one waits (overlap = queue_one)")
    if policy == "queue_one":
        return OverlapDecision("skip", "a run is running and one waits (overlap = queue_one)")
    return OverlapDecision("skip", "the previous run is still running (overlap = skip)")


def should_auto_pause(consecutive_failures: int, threshold: int = PAUSE_AFTER) -> bool:
    """Whether ``consecutive_failures`` reached ``threshold``."""
    return consecutive_failures >= threshold


def _span(delta: timedelta) -> str:
    """``4m``, ``1h30m``, ``90s``: the way durations are written in job files."""
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"
