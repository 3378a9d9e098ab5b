"""Rotation hygiene: how long a secret may go unchanged, how old it is, and the warning a run
prints when it uses one that is overdue. Pure: no I/O; ``now`` is always a parameter.

A rotation period is written like ``30d``, ``12w`` or ``720h`` (hours, days or weeks; from
1 hour to 5 years) and kept in seconds (``SecretMeta.rotate_after``); ``never`` means none.
A secret is overdue when more time than its period has passed since it was last set.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from core.errors import UsageError
from vault.secret import DEFAULT_SURFACES, SecretMeta

HOUR: Final = 3600
DAY: Final = 24 * HOUR
UNITS: Final = {"h": HOUR, "d": DAY, "w": 7 * DAY}
MIN_PERIOD: Final = HOUR
MAX_PERIOD: Final = 5 * 365 * DAY
NEVER: Final = ("never", "none", "off")
FIX: Final = 'a number and a unit h, d or w (e.g. "30d", "12w", "720h"), from 1h to 5 years'

_PERIOD: Final = re.compile(r"(\d{1,7})([hdw])")


def parse_period(text: str) -> int:
    """Seconds in a rotation period (``"30d"``, ``"12w"``, ``"720h"``); UsageError saying how
    to write one."""
    match = _PERIOD.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"{text!r} is not a rotation period; write {FIX}, or never")
    return validate_period(int(match[1]) * UNITS[match[2]])


def parse_policy(text: str) -> int | None:
    """A ``--rotate-after`` value: seconds, or None for ``never`` (no rotation policy)."""
    return None if text.strip().lower() in NEVER else parse_period(text)


def validate_period(seconds: int) -> int:
    """``seconds`` if it is a whole number of seconds from 1 hour to 5 years."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise UsageError(f"a rotation period is a whole number of seconds; write {FIX}")
    if not MIN_PERIOD <= seconds <= MAX_PERIOD:
        raise UsageError(f"a rotation period must be from 1h to 5 years; write {FIX}")
    return seconds


def format_period(seconds: int) -> str:
    """``30d`` for whole days, else ``36h``."""
    return f"{seconds // DAY}d" if seconds % DAY == 0 else f"{seconds // HOUR}h"


def age_seconds(meta: SecretMeta, now: datetime) -> float:
    """How long ago the secret's value was last set."""
    return max(0.0, (now - meta.updated).total_seconds())


def age_days(meta: SecretMeta, now: datetime) -> int:
    """Whole days since the secret's value was last set."""
    return int(age_seconds(meta, now) // DAY)


def is_overdue(meta: SecretMeta, now: datetime) -> bool:
    """True when the secret has a rotation period and more than that has passed."""
    return meta.rotate_after is not None and age_seconds(meta, now) > meta.rotate_after


def set_command(meta: SecretMeta) -> str:
    """The ``vault set`` command that stores a new value with the same rules."""
    parts = [f"coatcheck vault set {meta.name} --domains {','.join(meta.domains)}"]
    if meta.surfaces != DEFAULT_SURFACES:
        parts.append(f"--surfaces {','.join(meta.surfaces)}")
    if meta.methods:
        parts.append(f"--methods {','.join(meta.methods)}")
    if meta.paths:
        parts.append(f"--paths {','.join(meta.paths)}")
    if meta.placeholder_format != "opaque":
        parts.append(f"--placeholder-format {meta.placeholder_format}")
    return " ".join(parts)


def overdue_warning(meta: SecretMeta, now: datetime) -> str | None:
    """The warning for a run that uses ``meta`` when it is overdue, else None."""
    if meta.rotate_after is None or not is_overdue(meta, now):
        return None
    days = age_days(meta, now)
    ago = f"{days} days ago" if days != 1 else "1 day ago"
    return (
        f"secret {meta.name} was last rotated {ago} (rotate after "
        f"{format_period(meta.rotate_after)}): rotate it with `{set_command(meta)}` "
        "(the new value on stdin)"
    )


def overdue_warnings(metas: list[SecretMeta], now: datetime) -> tuple[str, ...]:
    """One warning per overdue secret of ``metas``, in their order."""
    return tuple(w for m in metas if (w := overdue_warning(m, now)) is not None)
