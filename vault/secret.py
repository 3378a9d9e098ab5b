"""The frozen types of the vault: a secret's value, its metadata, and the two together.

``SecretValue`` is the only place a real value lives in memory. Its ``repr``, ``str`` and
``format`` all show ``SecretValue('**********')``; ``reveal()`` is the one way out, and it is
called only where the value must be used (validation, encryption, injection).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from core.surfaces import DEFAULT_SURFACES, PLACEHOLDER_FORMATS, SURFACES, PlaceholderFormat

__all__ = ["DEFAULT_SURFACES", "PLACEHOLDER_FORMATS", "SURFACES", "PlaceholderFormat", "Secret",
           "SecretMeta", "SecretValue"]  # fmt: skip

_MASK: Final = "SecretValue('**********')"


class SecretValue:
    """A secret string that never shows itself in ``repr``, ``str``, f-strings or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecretValue wraps a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """Return the real value. Call this only where the value must be used."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class SecretMeta:
    """Everything about a secret except its value. Stored in plain text; safe to print."""

    name: str
    domains: tuple[str, ...]
    created: datetime
    updated: datetime
    surfaces: tuple[str, ...] = DEFAULT_SURFACES
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    placeholder_format: PlaceholderFormat = "opaque"
    rotate_after: int | None = None  # seconds; None: no rotation policy (vault/rotation.py)


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret's metadata and its value; ``repr`` shows the metadata and a masked value."""

    meta: SecretMeta
    value: SecretValue

    @property
    def name(self) -> str:
        return self.meta.name
