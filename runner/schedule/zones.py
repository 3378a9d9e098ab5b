"""Time zones for schedules: IANA names only (``"Europe/Berlin"``, ``"UTC"``), never
abbreviations (``EST``, ``CET``: ambiguous, and some are fixed offsets that ignore DST) or bare
offsets (``+02:00``, ``UTC+2``). Pure: names in, ``ZoneInfo`` or a ``ValueError`` with the fix.
"""

from __future__ import annotations

import json
import re
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT: Final = "UTC"
FIX: Final = 'use an IANA name such as "America/New_York", "Europe/Berlin" or "UTC"'
_UTC_NAMES: Final = frozenset({"UTC", "Etc/UTC"})
_OFFSET: Final = re.compile(r"(?:UTC|GMT|Z)?\s*[+-]\s*\d{1,2}(?::?\d{2})?", re.IGNORECASE)
_REGION_CITY: Final = re.compile(r"[A-Z][A-Za-z_-]*(?:/[A-Za-z0-9_+-]+)+")


def parse_zone(name: str = DEFAULT) -> ZoneInfo:
    """The zone called ``name``: ``"UTC"``, ``"Etc/UTC"`` or an Area/Location name."""
    text = name.strip()
    if text in _UTC_NAMES:
        return ZoneInfo(text)
    if _OFFSET.fullmatch(text):
        raise ValueError(
            f"{json.dumps(name)} is an offset, which ignores daylight saving time; {FIX}"
        )
    if not _REGION_CITY.fullmatch(text) or text.startswith("Etc/"):
        raise ValueError(f"{json.dumps(name)} is not an IANA region/city name; {FIX}")
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{json.dumps(name)} is not a known time zone; {FIX}") from None
