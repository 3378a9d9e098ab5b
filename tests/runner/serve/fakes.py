"""Shared fakes for the scheduler loop, the supervisor and the service's actions: a clock the
test moves by hand, fake ``coatcheck run`` children the test ends when it likes (no Docker),
and a ``Rig`` wiring a real History, Book, Launcher, Supervisor, Scheduler and Actions as
``runner/serve/service.py`` does.

A fake child ends the way the real one does: it writes ``$home/runs/<run id>/run.json`` with
its status (``succeeded``, ``failed``, ``timeout``, ``stopped``, ``error``) and exits; on
SIGTERM (``terminate``) it records ``stopped`` and exits 143, unless told to ignore it.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from runner.history.db import history_path
from runner.history.runrow import Run
from runner.history.store import History
from runner.serve.actions import Actions
from runner.serve.book import Book
from runner.serve.launcher import Launcher, Popen, ServePaths
from runner.serve.scheduler import Scheduler
from runner.serve.supervisor import Supervisor
from tests.runner.history.helpers import Clock as HistoryClock

T0 = datetime(2025, 3, 10, 10, 10, tzinfo=UTC)  # a Monday, ten past ten UTC
WAIT_S = 10.0  # an upper bound for events that come at once; never slept


def at(hour: int, minute: int = 0, second: int = 0, day: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, minute, second, tzinfo=UTC)


class Clock(HistoryClock):
    """The history tests' hand-set clock, starting at this module's ``T0``."""

    def __init__(self, now: datetime = T0) -> None:
        super().__init__(now)


def job_toml(name: str = "nightly", cron: str = "0 * * * *", **schedule: Any) -> str:
    """A command job with a ``[schedule]`` table (``schedule`` adds its fields)."""
    lines = [f'name = "{name}"', 'command = ["true"]', "", "[schedule]", f'cron = "{cron}"']
    for key, value in schedule.items():
        text = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


class FakeProc:
    """One fake child. ``hang``: a wait with a time-out returns at once, unfinished (the run
    outlived its time-out); ``ignore_term``: SIGTERM does nothing, only SIGKILL ends it."""

    def __init__(self, argv: list[str], home: Path, *, hang: bool, ignore_term: bool) -> None:
        self.args = argv
        self.run_id = argv[argv.index("--run-id") + 1]
        self.home = home
        self.hang = hang
        self.ignore_term = ignore_term
        self.returncode: int | None = None
        self.terminated = self.killed = False
        self._lock = threading.Lock()
        self._done = threading.Event()

    def finish(self, status: str | None, exit_code: int = 0, **extra: Any) -> None:
        """End the run: ``status`` goes to run.json (None: exit without writing one)."""
        with self._lock:
            if self._done.is_set():
                return
            if status is not None:
                run_dir = self.home / "runs" / self.run_id
                run_dir.mkdir(parents=True, exist_ok=True)
                record = {"run_id": self.run_id, "status": status, "exit_code": exit_code}
                (run_dir / "run.json").write_text(json.dumps({**record, **extra}))
            self.returncode = exit_code
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def poll(self) -> int | None:
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if self.hang and timeout is not None and not self._done.is_set():
            raise subprocess.TimeoutExpired(self.args, timeout)
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        self.terminated = True
        if not self.ignore_term:
            self.finish("stopped", 143, error="stopped (SIGTERM)")

    def kill(self) -> None:
        self.killed = True
        self.finish(None, -9)


class Children:
    """The fake ``popen``: every child it started, by run id."""

    def __init__(self) -> None:
        self.procs: dict[str, FakeProc] = {}
        self.hang = False
        self.ignore_term = False
        self.fail_with: OSError | None = None

    def __call__(self, argv: list[str], **kwargs: Any) -> FakeProc:
        if self.fail_with is not None:
            raise self.fail_with
        proc = FakeProc(argv, Path(kwargs["cwd"]), hang=self.hang, ignore_term=self.ignore_term)
        self.procs[proc.run_id] = proc
        return proc

    def __getitem__(self, run_id: str) -> FakeProc:
        return self.procs[run_id]

    def __contains__(self, run_id: object) -> bool:
        return run_id in self.procs


class Rig:
    """The service's parts as ``service._compose`` wires them, on ``home``."""

    def __init__(self, home: Path, clock: Clock, children: Children) -> None:
        self.home, self.clock, self.children = home, clock, children
        self.history = History.open(history_path(home), clock=clock)
        self.book = Book()
        self.notices: list[tuple[str, dict[str, Any]]] = []
        self.stored: dict[str, tuple[str, str]] = {}  # the fake vault: name -> (value, domain)
        self._changed = threading.Condition()
        self.launcher = Launcher(ServePaths(home), popen=cast(Popen, children))
        self.supervisor = Supervisor(
            self.history, self.launcher, notify=self.notify, pause_after=self.pause_after,
            on_change=self._on_change,
        )  # fmt: skip
        self.scheduler = self.new_scheduler()
        self.actions = Actions(
            self.history, self.book, self.supervisor, check_secrets=lambda job, src: None,
            reveal=lambda name: self.stored.get(name, (None, ""))[0],
            store_secret=lambda name, value, domain: self.stored.update({name: (value, domain)}),
            poke=self.scheduler.poke, clock=clock,
        )  # fmt: skip

    def new_scheduler(self, clock: Callable[[], datetime] | None = None) -> Scheduler:
        """Another scheduler on this rig's history and supervisor (a restart of the loop)."""
        return Scheduler(self.history, self.supervisor, self.book, clock=clock or self.clock,
                         notify=self.notify)  # fmt: skip

    # -- hooks --------------------------------------------------------------------------------
    def notify(self, kind: str, **fields: Any) -> None:
        with self._changed:
            self.notices.append((kind, fields))

    def kinds(self) -> list[str]:
        with self._changed:
            return [kind for kind, _ in self.notices]

    def pause_after(self, name: str) -> int:
        dep = self.history.deployments.find(name)
        sched = self.book.job(dep).schedule if dep is not None else None
        return sched.pause_after_failures if sched else 5

    def _on_change(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Until ``predicate`` holds, re-checked each time a run ends (never sleeps)."""
        with self._changed:
            assert self._changed.wait_for(predicate, timeout=WAIT_S), "timed out waiting"

    # -- doing --------------------------------------------------------------------------------
    def deploy(self, toml: str, name: str = "nightly") -> dict[str, Any]:
        jobs = self.home / "jobs"
        return self.actions.deploy(toml, str(jobs), str(jobs / f"{name}.toml"))

    def tick(self, when: datetime, scheduler: Scheduler | None = None) -> float:
        self.clock.now = when
        return (scheduler or self.scheduler).tick(when)

    def end(self, run_id: str, status: str | None = "succeeded", exit_code: int = 0) -> Run:
        """End a run's child and wait until the supervisor has recorded it and let it go."""
        self.children[run_id].finish(status, exit_code)
        self.wait_until(lambda: self.ended(run_id))
        return self.run(run_id)

    def ended(self, run_id: str) -> bool:
        """The run is recorded as ended and the supervisor counts only live children as
        running (its watcher records the end first, then lets the run go)."""
        run = self.run(run_id)
        if run.status in ("pending", "running") or run.deployment is None:
            return False
        procs = list(self.children.procs.values())
        alive = [p for p in procs if not p.done and self.run(p.run_id).deployment == run.deployment]
        return self.supervisor.running(run.deployment) == len(alive)

    # -- reading ------------------------------------------------------------------------------
    def run(self, run_id: str) -> Run:
        return self.history.runs.get_run(run_id)

    def runs(self, deployment: str = "nightly") -> list[Run]:
        """Oldest first."""
        return self.history.runs.list_runs(deployment, limit=1000)[::-1]

    def slots(self, deployment: str = "nightly") -> list[datetime]:
        """The slots of the deployment's schedule runs (skipped ones too), oldest first."""
        return [r.slot for r in self.runs(deployment) if r.slot is not None]

    def close(self) -> None:
        """Stop what still runs (as SIGTERM to the service does), then let go of the files."""
        self.supervisor.stop_all(timeout=WAIT_S)
        self.launcher.close()
        self.history.close()


@contextmanager
def open_rig(home: Path, clock: Clock, children: Children | None = None) -> Iterator[Rig]:
    rig = Rig(home, clock, children or Children())
    try:
        yield rig
    finally:
        rig.close()
