"""Durations as people write them in job files and flags: ``90``, ``"90s"``, ``"5m"``, ``"2h"``,
``"1h30m"``, ``"2.5s"``. Pure: a string or a number in, seconds out, or a ``ValueError`` whose
message says how to write one.
"""

from __future__ import annotations

import json
import math
import re
from typing import Final

UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0}
MIN_SECONDS: Final = 0.1
MAX_SECONDS: Final = 7 * 24 * 3600.0
FIX: Final = 'seconds (timeout = 90) or a number with a unit s, m or h (timeout = "5m")'

_PART: Final = re.compile(r"(\d+(?:\.\d+)?)([smh])")
_WHOLE: Final = re.compile(r"(?:\d+(?:\.\d+)?[smh])+")


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a positive number of seconds, or a string of numbers with units
    (``"90s"``, ``"5m"``, ``"1h30m"``) or of digits alone (``"90"``, as a flag gives it).
    Between 0.1 s and 7 days."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration: {FIX}")
    seconds = _parse_text(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds < MIN_SECONDS:
        raise ValueError(f"must be at least {MIN_SECONDS:g} seconds: {FIX}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most 7 days ({MAX_SECONDS:.0f} seconds): {FIX}")
    return seconds


def _parse_text(text: str) -> float:
    compact = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", compact):
        return float(compact)
    if not _WHOLE.fullmatch(compact):
        raise ValueError(f"{json.dumps(text)} is not a duration: {FIX}")
    seen: set[str] = set()
    total = 0.0
    last = math.inf
    for number, unit in _PART.findall(compact):
        if unit in seen or UNITS[unit] > last:
            raise ValueError(
                f"{json.dumps(text)} is not a duration: write each unit once, largest "
                f'first (e.g. "1h30m"): {FIX}'
            )
        seen.add(unit)
        last = UNITS[unit]
        total += float(number) * UNITS[unit]
    return total


def format_duration(seconds: float) -> str:
    """``1.2s``, ``95.0s``; for messages and the line a run prints at its end."""
    return f"{seconds:.1f}s"
