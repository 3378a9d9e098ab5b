"""runner/schedule/cron.py: the dialect, refusals, explanations and Debian's DST rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from runner.schedule.cron import Cron, min_gap, parse_cron, period, slots_after, tightest

NY = ZoneInfo("America/New_York")
Z = ZoneInfo("UTC")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def slots(expr: str, zone: ZoneInfo, after: datetime, n: int) -> list[datetime]:
    return list(slots_after(parse_cron(expr), zone, after, n))


@pytest.mark.parametrize(
    ("text", "expr"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("  30   2 * * *  ", "30 2 * * *"),
        ("0 9 * jan-mar mon-fri", "0 9 * JAN-MAR MON-FRI"),
        ("0 0 * JUL WED", "0 0 * JUL WED"),
        ("0 0 * * 7", "0 0 * * 7"),
        ("0 0 29 2 *", "0 0 29 2 *"),
    ],
    ids=lambda v: v.strip(),
)
def test_accepted(text: str, expr: str) -> None:
    assert parse_cron(text).expr == expr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
        ("@reboot", "@reboot is not a schedule"),
        ("@every", "not a known shortcut"),
        ("0 0 0 * * *", "has 6 fields; write exactly 5"),
        ("0 0 0 * * * 2025", "has 7 fields; write exactly 5"),
        ("* *", "write exactly 5"),
        ("0 0 L * *", '"L" (last day) is not supported'),
        ("0 0 * * 5L", '"L" (last day) is not supported'),
        ("0 0 15W * *", '"W" (nearest weekday) is not supported'),
        ("0 0 * * MON#2", '"#" (nth weekday) is not supported'),
        ("0 0 ? * *", "write * instead"),
        ("H 0 * * *", 'set jitter = "5m"'),
        ("CRON_TZ=UTC 0 0 * * *", "set timezone ="),
        ("TZ=Europe/Berlin 0 0 * * *", "set timezone ="),
        ("61 0 * * *", 'minute "61" is out of range; it takes 0-59'),
        ("0 0 * 13 *", "it takes 1-12 or JAN-DEC"),
        ("0 0 * * FRI-MON", "a range goes low-high"),
        ("x * * * *", 'minute "x" is not valid'),
        ("0 0 * MON *", 'month "MON" is not valid'),
    ],
    ids=lambda v: v,
)
def test_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron(text)
    assert says in str(caught.value)
    fixes = ("e.g.", "write", "use ", "set ", "remove", "pick", "combine")
    assert any(fix in str(caught.value) for fix in fixes)  # each message says what to do


@pytest.mark.parametrize(
    ("text", "explained"),
    [
        ("30 2 * * *", "At 02:30 every day"),
        ("*/30 * * * *", "Every 30 minutes"),
        ("0 * * * 1-5", "At the start of every hour on Monday through Friday"),
        ("@weekly", "At 00:00 on Sunday"),
        ("0 9,17 * * MON-FRI", "At 09:00 and 17:00 on Monday through Friday"),
        ("*/7 * * * *", "Every seventh minute of every hour"),
    ],
    ids=lambda v: v,
)
def test_explain(text: str, explained: str) -> None:
    assert parse_cron(text).explain() == explained


def test_explain_says_days_combine_with_or() -> None:
    text = parse_cron("0 9 1 * MON").explain()
    assert text.startswith("At 09:00 on the first day of month and on Monday")
    assert "combine with OR" in text


@pytest.mark.parametrize(
    ("text", "fixed"),
    [("30 2 * * *", True), ("0 9,17 * * *", True), ("0 1-5 * * *", True),
     ("0 * * * *", False), ("*/30 * * * *", False), ("0 */2 * * *", False),
     ("*/15 2 * * *", False)],
    ids=lambda v: str(v),
)  # fmt: skip
def test_fixed_time(text: str, fixed: bool) -> None:
    assert parse_cron(text).fixed_time is fixed


# Debian's DST rule, New York: spring forward 2025-03-09 02:00 EST -> 03:00 EDT (07:00Z);
# fall back 2025-11-02 02:00 EDT -> 01:00 EST (06:00Z), so 01:00-02:00 happens twice.
DST_CASES = [
    pytest.param("30 2 * * *", NY, utc(2025, 3, 8), ["03-08 07:30", "03-09 07:00", "03-10 06:30"],
                 id="fixed-spring-forward-fires-at-gap-end"),
    pytest.param("0,30 2 * * *", NY, utc(2025, 3, 9), ["03-09 07:00", "03-10 06:00"],
                 id="fixed-two-slots-in-gap-fire-once"),
    pytest.param("30 1 * * *", NY, utc(2025, 11, 1), ["11-01 05:30", "11-02 05:30", "11-03 06:30"],
                 id="fixed-fall-back-first-occurrence-only"),
    pytest.param("45 1 * * *", NY, utc(2025, 11, 2, 6, 40), ["11-03 06:45"],
                 id="fixed-started-in-second-pass-no-earlier-slot"),
    pytest.param("*/30 * * * *", NY, utc(2025, 3, 9, 6, 10), ["03-09 06:30", "03-09 07:00"],
                 id="step-spring-forward-skips-missing-wall-times"),
    pytest.param("*/30 * * * *", NY, utc(2025, 11, 2, 4, 40),
                 ["11-02 05:00", "11-02 05:30", "11-02 06:00", "11-02 06:30", "11-02 07:00"],
                 id="step-fall-back-both-passes"),
    pytest.param("0 * * * *", NY, utc(2025, 11, 2, 4, 10),
                 ["11-02 05:00", "11-02 06:00", "11-02 07:00"], id="hourly-fall-back-both-passes"),
    pytest.param("*/30 * * * *", NY, utc(2025, 11, 2, 6, 10), ["11-02 06:30", "11-02 07:00"],
                 id="step-started-in-second-pass"),
    # Lord Howe moves by 30 minutes: 2025-04-06 02:00 +11 -> 01:30 +10:30 (15:00Z on the 5th);
    # 2025-10-05 02:00 +10:30 -> 02:30 +11 (15:30Z on the 4th).
    pytest.param("15 2 * * *", LORD_HOWE, utc(2025, 10, 3),
                 ["10-03 15:45", "10-04 15:30", "10-05 15:15"], id="lord-howe-fixed-in-gap"),
    pytest.param("*/15 * * * *", LORD_HOWE, utc(2025, 4, 5, 14, 40),
                 ["04-05 14:45", "04-05 15:00", "04-05 15:15", "04-05 15:30"],
                 id="lord-howe-step-repeated-half-hour"),
    pytest.param("45 1 * * *", LORD_HOWE, utc(2025, 4, 4), ["04-04 14:45", "04-05 14:45",
                 "04-06 15:15"], id="lord-howe-fixed-fall-back-once"),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), DST_CASES)
def test_dst(expr: str, zone: ZoneInfo, after: datetime, expected: list[str]) -> None:
    got = slots(expr, zone, after, len(expected))
    assert [f"{s:%m-%d %H:%M}" for s in got] == expected
    assert all(s.tzinfo is UTC for s in got)


@pytest.mark.parametrize("zone", [Z, NY, LORD_HOWE], ids=str)
@pytest.mark.parametrize("expr", ["*/7 * * * *", "30 1 * * *", "0 * * * *", "*/10 1 * * *"])
def test_slots_strictly_increase_across_a_year(expr: str, zone: ZoneInfo) -> None:
    start = utc(2025, 1, 1)
    got = list(slots_after(parse_cron(expr), zone, start, 3000))
    assert got[0] > start
    assert all(a < b for a, b in zip(got, got[1:], strict=False))


def test_slots_after_is_strict() -> None:
    assert slots("0 * * * *", Z, utc(2025, 1, 1, 9), 1) == [utc(2025, 1, 1, 10)]


def test_slots_end_where_dates_end() -> None:
    assert slots("0 0 1 1 *", Z, utc(9997, 6, 1), 5) == [utc(9998, 1, 1), utc(9999, 1, 1)]


@pytest.mark.parametrize(
    ("expr", "gap", "typical"),
    [
        ("*/7 * * * *", timedelta(minutes=4), timedelta(minutes=7)),
        ("*/15 * * * *", timedelta(minutes=15), timedelta(minutes=15)),
        ("0 9 * * 1-5", timedelta(days=1), timedelta(days=1)),
        ("0 9,10 * * *", timedelta(hours=1), timedelta(hours=1)),
        ("@monthly", timedelta(days=28), timedelta(days=31)),
        ("0 0 29 2 *", timedelta(days=1461), timedelta(days=1461)),
    ],
    ids=lambda v: str(v),
)
def test_gaps(expr: str, gap: timedelta, typical: timedelta) -> None:
    cron = parse_cron(expr)
    assert min_gap(cron, Z, utc(2025, 1, 1)) == gap
    assert period(cron, Z, utc(2025, 1, 1)) == typical


def test_tightest_names_the_top_of_the_hour() -> None:
    assert tightest(parse_cron("*/7 * * * *"), Z, utc(2025, 1, 1)) == (
        utc(2025, 1, 1, 0, 56),
        utc(2025, 1, 1, 1, 0),
    )


def test_cron_is_frozen() -> None:
    cron = parse_cron("@daily")
    assert cron == Cron(source="@daily", expr="0 0 * * *")
    with pytest.raises(AttributeError):
        cron.expr = "x"  # type: ignore[misc]
