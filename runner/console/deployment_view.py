"""A deployment as the console shows it: schedule in words, next fire times (UTC and in the
schedule's zone), its newest run, and the problem when its job no longer parses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import CoatcheckError
from runner.history.deployments import Deployment
from runner.history.runrow import Run
from runner.history.store import History
from runner.schedule.cron import slots_after
from runner.serve.book import Book


@dataclass(frozen=True)
class Fire:
    utc: datetime
    local: datetime
    zone: str


@dataclass(frozen=True)
class DeploymentView:
    dep: Deployment
    schedule: str | None
    next: tuple[Fire, ...]
    last_run: Run | None
    problem: str | None


def view(dep: Deployment, history: History, book: Book, *, now: datetime, n: int) -> DeploymentView:
    newest = history.runs.list_runs(dep.name, None, limit=1)
    last = newest[0] if newest else None
    try:
        sched = book.job(dep).schedule
    except CoatcheckError as exc:
        return DeploymentView(dep, None, (), last, exc.message)
    if sched is None:
        return DeploymentView(dep, None, (), last, None)
    fires: tuple[Fire, ...] = ()
    if dep.status == "active":
        after = max(now, dep.last_slot or dep.armed_at)
        fires = tuple(Fire(t, t.astimezone(sched.zone), sched.timezone)
                      for t in slots_after(sched.compiled, sched.zone, after, n))  # fmt: skip
    return DeploymentView(dep, sched.compiled.explain(), fires, last, None)


def as_json(v: DeploymentView) -> dict[str, Any]:
    dep = v.dep
    return {
        "name": dep.name, "status": dep.status, "paused_reason": dep.paused_reason,
        "note": dep.note, "cron": dep.cron, "timezone": dep.timezone, "schedule": v.schedule,
        "config_version": dep.config_version,
        "next": [{"utc": f.utc.isoformat(), "local": f.local.isoformat()} for f in v.next],
        "last_run": {"id": v.last_run.id, "status": v.last_run.status} if v.last_run else None,
        "consecutive_failures": dep.consecutive_failures, "error": v.problem,
    }  # fmt: skip
