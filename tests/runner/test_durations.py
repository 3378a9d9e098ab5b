"""Durations as job files and --timeout write them (runner/durations.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.durations import FIX, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("0.5s", 0.5),
        (" 5M ", 300.0),
    ],
    ids=[
        "int",
        "float",
        "digits",
        "seconds",
        "minutes",
        "hours",
        "h-and-m",
        "h-m-s",
        "fraction",
        "spaces-and-case",
    ],
)
def test_good_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("5 minutes", '"5 minutes" is not a duration'),
        ("5d", "is not a duration"),
        ("", "is not a duration"),
        ("m5", "is not a duration"),
        ("30m1h", "largest first"),
        ("1m1m", "write each unit once"),
        (0, "at least 0.1 seconds"),
        (-5, "at least 0.1 seconds"),
        ("0s", "at least 0.1 seconds"),
        (float("nan"), "at least 0.1 seconds"),
        (8 * 24 * 3600, "at most 7 days"),
        (True, "must be a duration"),
        ([5], "must be a duration"),
    ],
    ids=[
        "words",
        "days",
        "empty",
        "unit-first",
        "small-unit-first",
        "unit-twice",
        "zero",
        "negative",
        "zero-seconds",
        "nan",
        "over-a-week",
        "bool",
        "list",
    ],
)
def test_bad_durations_say_how_to_write_one(value: object, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert words in str(caught.value)
    assert FIX in str(caught.value)


@given(st.integers(0, 160), st.integers(0, 59), st.integers(1, 59))
def test_units_add_up(hours: int, minutes: int, seconds: int) -> None:
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + f"{seconds}s"
    assert parse_duration(text) == hours * 3600 + minutes * 60 + seconds


def test_format_duration() -> None:
    assert format_duration(1.234) == "1.2s"
