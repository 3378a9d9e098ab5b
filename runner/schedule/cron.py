"""Cron expressions: the one module that imports ``cronsim``.

The dialect is Debian cron's five fields (minute hour day-of-month month day-of-week) with
numbers, ``*``, ranges, lists, ``/step``, ``JAN``-``DEC``, ``SUN``-``SAT`` and day-of-week 0-7
(0 and 7 are Sunday), plus the ``@daily``-style shortcuts. When both day fields are restricted
they combine with OR (Vixie and Debian cron): ``0 9 1 * MON`` fires on the 1st and on Mondays.

Time zones follow Debian cron's DST rule (``slots_after``):

- a fixed-time job (neither minute nor hour is a ``*`` wildcard or ``*/n`` step) whose wall time
  falls in a spring-forward gap fires once, at the first instant after the gap; on a fall-back
  day it fires once, at the first occurrence of the repeated wall time;
- any other job fires at every real instant whose wall time matches, both passes of a repeated
  hour included, and not at all for wall times that don't exist.

cronsim is asked only for wall-clock matches (naive datetimes); the mapping to instants is done
here, in UTC. cronsim 2.8's own zone handling returns, for a fixed-time job started inside the
second pass of a repeated hour, a slot *earlier* than the start (it drops ``fold``), and Python
compares same-zone datetimes by wall clock, so that bug hides from ``>``.
"""

from __future__ import annotations

import functools
import heapq
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

SHORTCUTS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
FIELDS: Final = ("minute", "hour", "day-of-month", "month", "day-of-week")
EXAMPLE: Final = 'e.g. cron = "30 2 * * *" (02:30 every day) or cron = "*/15 * * * *"'
REFERENCE: Final = datetime(2025, 1, 1)  # a fixed start for the "can it ever fire" check
_HORIZON: Final = timedelta(days=5 * 366)
_MONTHS: Final = (
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
)  # fmt: skip
_DAYS: Final = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ATOM: Final = re.compile(r"\*|\d+|[A-Z]{3}")
_UNSUPPORTED: Final = {
    "L": '"L" (last day) is not supported; list the days instead, e.g. 28-31 with a check '
    "in the job, or use a fixed day",
    "W": '"W" (nearest weekday) is not supported; use a day-of-week range such as MON-FRI',
    "#": '"#" (nth weekday) is not supported; combine a day range with a weekday in the job, '
    "or use a fixed day of month",
    "?": '"?" (Quartz "no value") is not cron; write * instead',
    "H": '"H" (Jenkins hash) is not supported; write a fixed minute and set jitter = "5m" '
    "to spread runs",
}


@dataclass(frozen=True)
class Cron:
    """A checked five-field expression; ``source`` is what the file said (maybe ``@daily``)."""

    source: str
    expr: str

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.expr.split())

    @property
    def fixed_time(self) -> bool:
        """Debian's test: minute and hour are not ``*`` wildcards or ``*/n`` steps."""
        minute, hour = self.fields[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    @property
    def days_or(self) -> bool:
        """Both day fields restricted: they combine with OR."""
        return not self.fields[2].startswith("*") and not self.fields[4].startswith("*")

    def explain(self) -> str:
        """English for the expression, e.g. "At 02:30 every day"."""
        try:
            text = CronSim(self.expr, REFERENCE).explain()
        except (CronSimError, ValueError, KeyError, IndexError):
            text = "At " + "; ".join(f"{n} {v}" for n, v in zip(FIELDS, self.fields, strict=True))
        minute, rest = self.fields[0], self.fields[1:]
        m = re.fullmatch(r"\*/(\d+)", minute)
        if m and 60 % int(m[1]) == 0 and rest == ("*", "*", "*", "*"):
            text = f"Every {m[1]} minutes"
        if self.days_or:
            text += " (day-of-month and day-of-week combine with OR: either one matching is enough)"
        return text


def parse_cron(text: str) -> Cron:
    """``text`` as a Cron, or a ``ValueError`` saying what to write instead."""
    source = text.strip()
    shown = json.dumps(text)
    lowered = source.lower()
    if lowered == "@reboot":
        raise ValueError(
            f"{shown}: @reboot is not a schedule (the scheduler has no boot); use a time, {EXAMPLE}"
        )
    if lowered.startswith("@"):
        if lowered not in SHORTCUTS:
            raise ValueError(
                f"{shown} is not a known shortcut; use one of {', '.join(SHORTCUTS)} or "
                f"five fields, {EXAMPLE}"
            )
        expr = SHORTCUTS[lowered]
    else:
        expr = " ".join(source.split())
    if re.match(r"(?:CRON_)?TZ\s*=", expr, re.IGNORECASE):
        raise ValueError(
            f"{shown}: a zone prefix is not part of the expression; remove it and set "
            'timezone = "America/New_York" (an IANA name) in the [schedule] table'
        )
    given = expr.split()
    parts = expr.upper().split()
    if len(parts) in (6, 7):
        raise ValueError(
            f"{shown} has {len(parts)} fields; write exactly 5 (minute hour day-of-month "
            f"month day-of-week), without seconds or years: {EXAMPLE}"
        )
    if len(parts) != 5:
        raise ValueError(
            f"{shown} has {len(parts)} field(s); write exactly 5 (minute hour day-of-month "
            f"month day-of-week): {EXAMPLE}"
        )
    for index, part in enumerate(parts):
        _check_field(shown, index, part, given[index])
    try:
        sim = CronSim(" ".join(parts), REFERENCE)
        first = next(sim, None)
    except CronSimError:
        first = None
        _impossible_or_bad(shown, parts)
    if first is None or first - REFERENCE > _HORIZON:
        _impossible_or_bad(shown, parts)
    return Cron(source=source, expr=" ".join(parts))


def _check_field(shown: str, index: int, part: str, given: str) -> None:
    name = FIELDS[index]
    stripped = re.sub(r"[A-Z]{3}", lambda m: "" if _named(index, m[0]) else m[0], part)
    for char, why in _UNSUPPORTED.items():
        if char in stripped:
            raise ValueError(f"{shown}: {name} {json.dumps(given)}: {why}")
    for atom in re.split(r"[,/-]", part):
        if not _ATOM.fullmatch(atom) or (atom.isalpha() and not _named(index, atom)):
            names = {3: " or JAN-DEC", 4: " or SUN-SAT"}.get(index, "")
            raise ValueError(
                f"{shown}: {name} {json.dumps(given)} is not valid; use numbers{names}, *, "
                f"ranges (1-5), lists (1,15) and steps (*/10): {EXAMPLE}"
            )


def _named(index: int, atom: str) -> bool:
    return (index == 3 and atom in _MONTHS) or (index == 4 and atom in _DAYS)


def _impossible_or_bad(shown: str, parts: list[str]) -> None:
    for index, part in enumerate(parts):
        probe = ["*"] * 5
        probe[index] = part
        try:
            CronSim(" ".join(probe), REFERENCE)
        except CronSimError:
            limits = ("0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-7 or SUN-SAT")[index]
            raise ValueError(
                f"{shown}: {FIELDS[index]} {json.dumps(part)} is out of range; it takes "
                f"{limits}, and a range goes low-high: {EXAMPLE}"
            ) from None
    raise ValueError(
        f"{shown} never fires (no such date, e.g. February 31st); pick a day that exists "
        'in the month, e.g. cron = "0 0 28 2 *", or a day-of-month that every listed month has'
    )


def slots_after(
    cron: Cron, zone: ZoneInfo, after: datetime, limit: int | None = None
) -> Iterator[datetime]:
    """The instants (UTC, aware) ``cron`` names in ``zone``, strictly after ``after``, in
    order, each later than the one before; at most ``limit`` of them."""
    after = after.astimezone(UTC)
    # Start early on the wall clock: a repeated hour's second pass comes after, in UTC,
    # wall times that are later than it.
    # Start back on the wall clock, far enough to see both passes of a repeated hour when a
    # transition is near; a minute back is enough when the offset is the same 3 h either way.
    back = timedelta(hours=3)
    if len({(after + k * back).astimezone(zone).utcoffset() for k in (-1, 0, 1)}) == 1:
        back = timedelta(minutes=1)
    wall = after.astimezone(zone).replace(tzinfo=None, fold=0) - back
    pending: list[datetime] = []
    last = after
    count = 0
    for match in _walls(cron.expr, wall):
        instants, floor = _instants(match, zone, fixed=cron.fixed_time)
        while pending and pending[0] < floor:
            slot = heapq.heappop(pending)
            if slot > last:
                yield slot
                last, count = slot, count + 1
                if limit is not None and count >= limit:
                    return
        for slot in instants:
            heapq.heappush(pending, slot)
    for slot in sorted(pending):  # cronsim gave up (50 years without a match)
        if slot > last and (limit is None or count < limit):
            yield slot
            last, count = slot, count + 1


def _walls(expr: str, start: datetime) -> Iterator[datetime]:
    """cronsim's wall-clock matches after the naive ``start``; ends where dates end."""
    sim = CronSim(expr, start)
    while True:
        try:
            yield next(sim)
        except (StopIteration, OverflowError):
            return


def _instants(wall: datetime, zone: ZoneInfo, *, fixed: bool) -> tuple[list[datetime], datetime]:
    """The real instants of the naive ``wall`` in ``zone`` under Debian's rule, and a lower
    bound for the instants of every later wall time."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    exists = early.astimezone(zone).replace(tzinfo=None) == wall
    if exists:
        both = [early] if fixed or late == early else [early, late]
        return both, early
    gap_end = _transition(min(early, late), max(early, late), zone)
    return ([gap_end] if fixed else []), gap_end


def _transition(low: datetime, high: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (low, high] whose offset differs from ``low``'s (to the second)."""
    before = low.astimezone(zone).utcoffset()
    lo, hi = 0, int((high - low).total_seconds())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (low + timedelta(seconds=mid)).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return low + timedelta(seconds=hi)


def gaps(
    cron: Cron, zone: ZoneInfo, around: datetime, *, count: int = 2000
) -> list[tuple[datetime, datetime]]:
    """Consecutive slot pairs over a representative window: up to ``count`` slots from
    ``around``, over a year at most (but at least one pair)."""
    end = around + timedelta(days=366)
    slots: list[datetime] = []
    for slot in slots_after(cron, zone, around, count):
        if slot > end and len(slots) >= 2:
            break
        slots.append(slot)
    return list(zip(slots, slots[1:], strict=False))


@functools.lru_cache(maxsize=4096)  # pure, walks hundreds of slots: once per cron
def tightest(cron: Cron, zone: ZoneInfo, around: datetime) -> tuple[datetime, datetime]:
    """The two consecutive slots closest together (the earliest such pair)."""
    return min(gaps(cron, zone, around), key=lambda pair: pair[1] - pair[0])  # never empty


@functools.lru_cache(maxsize=4096)  # pure, walks hundreds of slots: once per cron
def min_gap(cron: Cron, zone: ZoneInfo, around: datetime) -> timedelta:
    """The smallest real gap between consecutive slots (``*/7`` -> 4 minutes)."""
    pairs = gaps(cron, zone, around)
    return min((end - start for start, end in pairs), default=_HORIZON)


@functools.lru_cache(maxsize=4096)  # pure, walks hundreds of slots: once per cron
def period(cron: Cron, zone: ZoneInfo, around: datetime) -> timedelta:
    """The typical gap: the most common one, the smaller on a tie (``*/7`` -> 7 minutes,
    weekdays at 09:00 -> 1 day)."""
    counts: dict[timedelta, int] = {}
    for start, end in gaps(cron, zone, around, count=500):
        counts[end - start] = counts.get(end - start, 0) + 1
    return min(counts, key=lambda gap: (-counts[gap], gap), default=_HORIZON)
