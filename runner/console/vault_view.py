"""The vault page's rows: each secret's metadata, its age and whether rotation is overdue.
Only ``Vault.list()`` is called: it needs no key and holds no value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vault.secret import SecretMeta
from vault.store import Vault


@dataclass(frozen=True)
class SecretRow:
    meta: SecretMeta
    age_days: int
    rotate_after: int | None  # seconds, when the secret has a rotation window
    overdue: bool


def row(meta: SecretMeta, now: datetime) -> SecretRow:
    age = now - meta.updated
    window = getattr(meta, "rotate_after", None)
    limit = int(window) if isinstance(window, int | float) else None
    overdue = limit is not None and age.total_seconds() > limit
    return SecretRow(meta, max(0, age.days), limit, overdue)


def rows(home: Path, now: datetime) -> list[SecretRow]:
    return [row(meta, now) for meta in Vault.open(home).list()]
