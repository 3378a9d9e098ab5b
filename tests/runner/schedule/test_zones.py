"""runner/schedule/zones.py: IANA names in, abbreviations and offsets refused with the fix."""

from __future__ import annotations

import pytest

from runner.schedule.zones import parse_zone


@pytest.mark.parametrize(
    "name",
    ["UTC", "Etc/UTC", "America/New_York", "Australia/Lord_Howe",
     "America/Argentina/Buenos_Aires", " Europe/Berlin "],
    ids=str.strip,
)  # fmt: skip
def test_accepted(name: str) -> None:
    assert parse_zone(name).key == name.strip()


def test_default_is_utc() -> None:
    assert parse_zone().key == "UTC"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("EST", "not an IANA region/city name"),
        ("PST", "not an IANA region/city name"),
        ("CET", "not an IANA region/city name"),
        ("EST5EDT", "not an IANA region/city name"),
        ("Etc/GMT+5", "not an IANA region/city name"),
        ("+02:00", "is an offset"),
        ("UTC+2", "is an offset"),
        ("GMT-05:00", "is an offset"),
        ("Mars/Olympus_Mons", "not a known time zone"),
        ("../etc/passwd", "not an IANA region/city name"),
        ("", "not an IANA region/city name"),
    ],
    ids=lambda v: v or "empty",
)
def test_refused(name: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_zone(name)
    assert says in str(caught.value)
    assert 'use an IANA name such as "America/New_York"' in str(caught.value)
