"""The deployment page's chart (pure): one bar per run, oldest on the left, its height the
run's duration (runs without one, e.g. skipped, get a stub), its class the run's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from runner.history.runrow import Run

WIDTH: Final = 600
HEIGHT: Final = 120
STUB: Final = 3  # the height of a bar without a duration
MAX_BAR: Final = 24


@dataclass(frozen=True)
class Bar:
    run_id: str
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


def duration_s(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def bars(runs: list[Run], *, width: int = WIDTH, height: int = HEIGHT) -> list[Bar]:
    """``runs`` newest first (as the history lists them); bars oldest first."""
    ordered = list(reversed(runs))
    if not ordered:
        return []
    slot = min(float(MAX_BAR), width / len(ordered))
    durations = [duration_s(r) for r in ordered]
    longest = max((d for d in durations if d is not None), default=0.0)
    out: list[Bar] = []
    for i, (run, took) in enumerate(zip(ordered, durations, strict=True)):
        tall = STUB if not took or not longest else max(STUB, (height - 4) * took / longest)
        when = run.started_at or run.scheduled_at or run.created_at
        words = f"{took:.1f} s" if took is not None else "no duration"
        title = f"{run.id} {run.status}, {words}, {when.isoformat()}"
        x, y, wide = round(i * slot + 1, 2), round(height - tall, 2), round(max(1.0, slot - 2), 2)
        out.append(Bar(run.id, x, y, wide, round(tall, 2), run.status, title))
    return out
