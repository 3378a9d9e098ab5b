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


_PREFIX_RE = re.compile(r"^(?:[A-Za-z0-9]{1,12}[_-]){1,4}")
_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)


def mint_shaped(value: str) -> str:
    """A placeholder shaped like ``value``: same prefix (``ghp_``, ``sk-ant-api03-``), same
    length, and each later character drawn from the class (digit, lower, upper) of the one it
    stands for, for clients that check a token's format. Refused when that shape can't carry
    128 bits of randomness."""
    m = _PREFIX_RE.match(value)
    prefix = m.group(0) if m and len(m.group(0)) < len(value) else ""
    body = value[len(prefix) :]
    out, bits = [], 0.0
    for ch in body:
        alphabet = next((c for c in _CLASSES if ch in c), _ALPHABET)
        out.append(secrets.choice(alphabet))
        bits += math.log2(len(alphabet))
    if bits < MIN_BITS:
        from core.errors import UsageError

        raise UsageError(
            f"a shaped placeholder for this value would carry {bits:.0f} bits of randomness, "
            f"under {MIN_BITS}; use --placeholder-format opaque for it"
        )
    shaped = prefix + "".join(out)
    return shaped if shaped != value else mint_shaped(value)


def is_opaque(text: str) -> bool:
    return bool(_OPAQUE_RE.match(text))
