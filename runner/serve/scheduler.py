"""The scheduler loop of ``coatcheck serve`` (scheduler.md, "Firing").

It wakes at the next fire time and at least every 30 s, waits on a monotonic clock
(``threading.Event.wait``) and decides on the wall clock (``clock``, injectable). Each wake, for
every active deployment whose wake time has come, ``plan_wake`` (pure) says which slot fires
and which were missed; the database then decides who acts on it: ``advance_last_slot`` moves
the deployment's last handled slot forwards only, and a slot's run is unique on
``(deployment, slot)``, so two schedulers on one database never fire a slot twice, and a clock
stepped backwards never re-fires one. Limits (the daily cap) and the overlap policy turn a
due slot into a skip with its reason, recorded in the history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

import structlog

from core.errors import CoatcheckError
from runner.history.db import utc_now
from runner.history.deployments import Deployment
from runner.history.store import History
from runner.schedule.fields import Schedule
from runner.schedule.policy import Timing, over_daily_cap, plan_wake
from runner.serve.book import Book, daily_window
from runner.serve.supervisor import Supervisor

MAX_SLEEP: Final = timedelta(seconds=30)
BROKEN_RETRY: Final = timedelta(minutes=5)
PRUNE_EVERY: Final = timedelta(hours=1)


class Scheduler:
    def __init__(
        self,
        history: History,
        supervisor: Supervisor,
        book: Book,
        *,
        clock: Callable[[], datetime] = utc_now,
        notify: Callable[..., Any] = lambda *a, **k: None,
        prune: Callable[[], None] = lambda: None,
    ) -> None:
        self.history = history
        self.supervisor = supervisor
        self.book = book
        self.clock = clock
        self._notify = notify
        self._prune = prune
        self._wake = threading.Event()
        self._next: dict[str, tuple[tuple[int, datetime, str], datetime]] = {}
        self._timings: dict[str, tuple[int, Timing]] = {}  # name -> (config version, timing)
        self._pruned: datetime | None = None
        self._log = structlog.get_logger("coatcheck.serve")

    def poke(self) -> None:
        """Something changed (a deploy, an unpause): look again now."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                delay = self.tick(self.clock())
            except Exception as exc:  # a bad wake must not end the scheduler
                self._log.exception("scheduler_error", error=type(exc).__name__)
                delay = MAX_SLEEP.total_seconds()
            # the delay counts from the wake's start: a long wake must not make the next late
            self._wake.wait(timeout=max(0.0, delay - (time.monotonic() - began)))
            self._wake.clear()

    def tick(self, now: datetime) -> float:
        """Handle what is due at ``now``; the seconds until the next wake."""
        soonest = now + MAX_SLEEP
        active = self.history.deployments.list(status="active")
        names = set()
        for dep in active:
            names.add(dep.name)
            if dep.cron is None:
                continue
            key = (dep.config_version, dep.armed_at, dep.status)
            cached = self._next.get(dep.name)
            if cached is not None and cached[0] == key and cached[1] > now:
                soonest = min(soonest, cached[1])
                continue
            wake = self._handle(dep, now)
            self._next[dep.name] = (key, wake)
            soonest = min(soonest, wake)
        for gone in set(self._next) - names:
            del self._next[gone]
            self._timings.pop(gone, None)
        if self._pruned is None or now - self._pruned >= PRUNE_EVERY or now < self._pruned:
            self._pruned = now
            self._prune()
        return max(0.0, (soonest - now).total_seconds())

    def _handle(self, dep: Deployment, now: datetime) -> datetime:
        try:
            job = self.book.job(dep)
        except CoatcheckError as exc:  # valid when deployed; a file it names is gone since
            self._log.error("deployment_broken", deployment=dep.name, error=exc.message)
            return now + BROKEN_RETRY
        if job.schedule is None:
            return now + MAX_SLEEP
        due = plan_wake(self._timing(dep, job.schedule), last_slot=dep.last_slot,
                        armed_at=dep.armed_at, now=now)  # fmt: skip
        mine = due.handled_through is None or self.history.deployments.advance_last_slot(
            dep.name, due.handled_through
        )
        if not mine:  # another scheduler handled these slots
            return due.wake_at
        if due.missed is not None:
            m = due.missed
            run_id = self.history.runs.record_missed(dep.name, m.count, m.first, m.last,
                                                     reason=m.reason)  # fmt: skip
            self._log.warning("missed", deployment=dep.name, count=m.count, reason=m.reason)
            self._notify("missed", run_id=run_id, deployment=dep.name, status="missed",
                         reason=f"{m.count} slot(s) missed: {m.reason}")  # fmt: skip
        if due.fire is not None:
            self._fire(dep, due.fire, now)
        if due.next_slot is None:
            return due.wake_at
        # Nothing can be due before the next slot (the loop itself still wakes every 30 s,
        # and a clock stepped forward past it makes it due): plan this deployment then, not
        # every 30 s; at 10,000 deployments re-planning them all took over a second a wake.
        return due.next_slot + self._timing(dep, job.schedule).jitter

    def _timing(self, dep: Deployment, schedule: Schedule) -> Timing:
        """``schedule.timing``, once per config version: its period walks hundreds of slots."""
        cached = self._timings.get(dep.name)
        if cached is None or cached[0] != dep.config_version:
            cached = (dep.config_version, schedule.timing(dep.name))
            self._timings[dep.name] = cached
        return cached[1]

    def _fire(self, dep: Deployment, slot: datetime, now: datetime) -> None:
        run_id = self.history.runs.claim_slot(dep.name, slot, config_version=dep.config_version)
        if run_id is None:
            return
        job = self.book.job(dep)
        assert job.schedule is not None
        starts = self.history.runs.start_times(dep.name, now - daily_window())
        if over_daily_cap(starts[:-1], now, job.schedule.daily_cap):  # [:-1]: not this one
            self.history.runs.finish(run_id, "skipped", reason="daily_cap")
            self._log.info("skip", deployment=dep.name, run_id=run_id, reason="daily_cap")
            return
        action = self.supervisor.submit(self.book.launch(dep, run_id), job.schedule.overlap)
        self._log.info("fire", deployment=dep.name, run_id=run_id, slot=slot.isoformat(),
                       action=action)  # fmt: skip
