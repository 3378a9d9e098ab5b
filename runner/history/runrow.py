"""A row of ``runs`` as a frozen value, and the status words."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from runner.history.db import from_text

RunStatus = Literal[
    "pending", "running", "succeeded", "failed", "timed_out", "cancelled", "error", "skipped",
    "missed",
]  # fmt: skip
Trigger = Literal["schedule", "manual", "api", "webhook"]
STATUSES: Final[tuple[str, ...]] = RunStatus.__args__  # type: ignore[attr-defined]
TRIGGERS: Final[tuple[str, ...]] = Trigger.__args__  # type: ignore[attr-defined]
UNFINISHED: Final = ("pending", "running")
FINISHED: Final = tuple(s for s in STATUSES if s not in UNFINISHED)
FAILURES: Final = ("failed", "timed_out", "error")
_TIMES: Final = frozenset(
    {"slot", "created_at", "scheduled_at", "started_at", "finished_at", "missed_first",
     "missed_last"}
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    seq: int
    id: str
    deployment: str | None
    status: RunStatus
    trigger: Trigger
    slot: datetime | None
    actor: str | None
    idempotency_key: str | None
    delivery_id: str | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int | None
    reason: str | None
    error_class: str | None
    config_version: int | None
    run_dir: str | None
    count: int
    missed_first: datetime | None
    missed_last: datetime | None
    owner: str | None = None  # "host:pid" of the service that started it
    warnings: tuple[str, ...] | None = None  # e.g. a secret overdue for rotation


def run_of(row: sqlite3.Row) -> Run:
    values: dict[str, Any] = {
        k: (from_text(row[k]) if k in _TIMES else row[k])
        for k in row.keys()  # noqa: SIM118 - a Row has no __iter__ of its keys
    }
    if values.get("warnings") is not None:
        values["warnings"] = warnings_of(values["warnings"])
    return Run(**values)


def warnings_of(text: str) -> tuple[str, ...] | None:
    """The ``warnings`` column (a JSON list of strings) as a tuple; None if it is not one."""
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if not isinstance(items, list):
        return None
    return tuple(str(item) for item in items)


def in_list(words: tuple[str, ...]) -> str:
    """``('a', 'b')`` as SQL text, for fixed status words only (never user input)."""
    assert all(w.isidentifier() for w in words)
    return "(" + ", ".join(f"'{w}'" for w in words) + ")"
