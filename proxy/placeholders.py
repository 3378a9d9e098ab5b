"""Placeholders: the tickets a sandbox holds instead of real secret values.

A placeholder is minted per run and per secret. The opaque form is ``ccph_`` followed by 26
base-62 characters (about 154 bits of randomness), so it is recognisable in logs and leak scans
and can't be guessed by another run. Pure: no I/O beyond the OS random source.
"""

from __future__ import annotations

import math
import re
import secrets
import string

PREFIX = "ccph_"
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_CHARS = 26
MIN_BITS = 128
_OPAQUE_RE = re.compile(rf"^{PREFIX}[A-Za-z0-9]{{{_RANDOM_CHARS}}}$")


def mint() -> str:
    """A fresh opaque placeholder."""
    return PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))


def is_opaque(text: str) -> bool:
    return bool(_OPAQUE_RE.match(text))


def bits_of_randomness(alphabet_size: int, length: int) -> float:
    return length * math.log2(alphabet_size) if alphabet_size > 1 else 0.0


assert bits_of_randomness(len(_ALPHABET), _RANDOM_CHARS) >= MIN_BITS  # noqa: S101
