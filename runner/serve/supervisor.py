"""The runs a ``coatcheck serve`` has started: overlap, the maximum runtime, how each ended.

Each run is a child process (``runner/serve/launcher.py``) watched by a thread of its own.
When it ends, its run directory's ``run.json`` says how (the child wrote it), and the history
row is finished with the spec's status: ``succeeded``, ``failed``, ``timed_out`` (its time-out
was the deployment's maximum runtime), ``cancelled`` (the service stopped it) or ``error``.
A child that outlives its maximum runtime by ``GRACE_S`` is stopped by the service itself.
Consecutive failures auto-pause a deployment (``pause_after_failures``, default 5). A run's
warnings (in run.json) are kept on its row and sent as a ``warning`` notification.
``queue_one`` keeps at most one run waiting per deployment; it starts when the running one ends.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from runner.history.store import History
from runner.schedule.policy import OverlapDecision, overlap_decision, should_auto_pause
from runner.serve.launcher import Child, Launch, Launcher, stderr_tail
from runner.serve.owners import owner_alive

GRACE_S: Final = 120.0
STOP_S: Final = 30.0
STATUS: Final = {
    "succeeded": "succeeded", "failed": "failed", "timeout": "timed_out", "error": "error",
    "stopped": "cancelled",
}  # fmt: skip
FAILED: Final = ("failed", "timed_out", "error")
Notify = Callable[..., Any]


@dataclass
class Active:
    launch: Launch
    proc: Child
    stopping: bool = False


@dataclass
class _State:
    running: dict[str, Active] = field(default_factory=dict)  # run id -> active
    queued: dict[str, Launch] = field(default_factory=dict)  # deployment -> the one waiting


class Supervisor:
    def __init__(
        self,
        history: History,
        launcher: Launcher,
        *,
        notify: Notify = lambda *a, **k: None,
        pause_after: Callable[[str], int] = lambda _name: 5,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.history = history
        self.launcher = launcher
        self._notify = notify
        self._pause_after = pause_after
        self._on_change = on_change
        self._lock = threading.Condition()
        self._state = _State()
        self._closing = False
        self._log = structlog.get_logger("coatcheck.serve")

    # -- admission -------------------------------------------------------------------------
    def running(self, deployment: str) -> int:
        with self._lock:  # re-entrant (a Condition over an RLock)
            return sum(1 for a in self._state.running.values() if a.launch.deployment == deployment)

    def admit(self, deployment: str, overlap: str) -> OverlapDecision:
        with self._lock:
            queued = 1 if deployment in self._state.queued else 0
        # Ours, and those another service on this database runs (its rows say "running").
        others = [r for r in self.history.runs.running_runs(deployment) if owner_alive(r.owner)]
        running = max(self.running(deployment), len(others))
        return overlap_decision(overlap, running, queued)  # type: ignore[arg-type]

    def submit(self, launch: Launch, overlap: str) -> str:
        """Start ``launch`` (its history row exists, pending), queue it, or skip it by the
        deployment's overlap policy; returns ``start``, ``queue`` or ``skip``."""
        with self._lock:  # one decision at a time: two triggers can't both see "none running"
            decision = self.admit(launch.deployment, overlap)
            if self._closing:
                self.history.runs.finish(launch.run_id, "cancelled", reason="service stopping")
                return "skip"
            if decision.action == "start":
                self._start(launch)
            elif decision.action == "queue":
                self._state.queued[launch.deployment] = launch
        if decision.action == "skip":
            self.history.runs.finish(launch.run_id, "skipped", reason="overlap")
            self._log.info("skip", run_id=launch.run_id, deployment=launch.deployment,
                           reason="overlap", why=decision.reason)  # fmt: skip
        return decision.action

    # -- a run's life ------------------------------------------------------------------------
    def _start(self, launch: Launch) -> None:
        try:
            proc = self.launcher.start(launch)
        except OSError as exc:
            self.history.runs.finish(launch.run_id, "error", reason=f"could not start: {exc}",
                                     error_class=type(exc).__name__)  # fmt: skip
            return
        run_dir = self.launcher.paths.home / "runs" / launch.run_id
        self.history.runs.mark_running(launch.run_id, run_dir=str(run_dir))
        active = Active(launch, proc)
        with self._lock:
            self._state.running[launch.run_id] = active
        threading.Thread(target=self._watch, args=(active,), daemon=True,
                         name=f"run-{launch.run_id}").start()  # fmt: skip

    def _watch(self, active: Active) -> None:
        launch, proc = active.launch, active.proc
        try:
            proc.wait(timeout=launch.timeout + GRACE_S)
        except subprocess.TimeoutExpired:
            active.stopping = True
            self._stop(proc)
        status, code, reason = self._outcome(active)
        warnings = self._warnings(launch.run_id)
        self.history.runs.finish(launch.run_id, status, exit_code=code, reason=reason)  # type: ignore[arg-type]
        self._log.info("run", run_id=launch.run_id, deployment=launch.deployment, status=status,
                       exit_code=code, reason=reason)  # fmt: skip
        self._after(launch, status, reason)
        if warnings:
            self._notify("warning", run_id=launch.run_id, deployment=launch.deployment,
                         status=status, reason="; ".join(warnings))  # fmt: skip
        with self._lock:
            self._state.running.pop(launch.run_id, None)
            nxt = None if self._closing else self._state.queued.pop(launch.deployment, None)
            self._lock.notify_all()
        if nxt is not None:
            self._start(nxt)
        self._on_change()

    def _outcome(self, active: Active) -> tuple[str, int | None, str | None]:
        launch, proc = active.launch, active.proc
        record = self._record(launch.run_id)
        code = record.get("exit_code", proc.returncode)
        if record.get("status") in STATUS:
            status = STATUS[record["status"]]
            if status == "cancelled" and not (active.stopping or self._closing):
                status = "error"  # stopped by someone else's signal
            elif status == "cancelled" and not self._closing:
                status = "timed_out"  # we stopped it: past its maximum runtime
            reason = {"timed_out": "max_runtime", "cancelled": "service stopping"}.get(status)
            if status == "error":
                reason = str(record.get("error") or "error")[:500]
            return status, code, reason
        if active.stopping and not self._closing:
            return "timed_out", code, "max_runtime"
        if self._closing:
            return "cancelled", code, "service stopping"
        tail = stderr_tail(self.launcher.paths.stderr_file(launch.run_id))
        return "error", proc.returncode, tail or f"the run exited {proc.returncode} before it began"

    def _record(self, run_id: str) -> dict[str, Any]:
        try:
            data = json.loads((self.launcher.paths.home / "runs" / run_id / "run.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("status") != "running" else {}

    def _warnings(self, run_id: str) -> list[str]:
        """run.json's warnings (e.g. a secret overdue for rotation), kept on the run's row."""
        found = self._record(run_id).get("warnings")
        if not isinstance(found, list) or not found:
            return []
        warnings = [str(w)[:1000] for w in found[:20]]
        self.history.runs.set_warnings(run_id, warnings)
        return warnings

    def _after(self, launch: Launch, status: str, reason: str | None) -> None:
        if status == "cancelled":
            return
        failed = status in FAILED
        streak = self.history.deployments.note_result(launch.deployment, failed=failed)
        kind = {"succeeded": "success", "timed_out": "timeout"}.get(status, "failure")
        self._notify(kind, run_id=launch.run_id, deployment=launch.deployment, status=status,
                     reason=reason or "")  # fmt: skip
        threshold = self._pause_after(launch.deployment)
        if failed and should_auto_pause(streak, threshold):
            dep = self.history.deployments.find(launch.deployment)
            if dep is not None and dep.status == "active":
                note = f"paused after {streak} consecutive failures; last: {reason or status}"
                self.history.deployments.pause(launch.deployment, "error", note[:500])
                self._log.warning("auto_pause", deployment=launch.deployment, failures=streak)
                self._notify("auto_pause", run_id=launch.run_id, deployment=launch.deployment,
                             status="paused", reason=note)  # fmt: skip

    # -- stopping ----------------------------------------------------------------------------
    def _stop(self, proc: Child) -> None:
        """SIGTERM (the run removes its sandbox and records itself), then SIGKILL."""
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self, timeout: float = STOP_S) -> None:
        """On SIGTERM: queued runs are cancelled, running ones stopped and recorded."""
        with self._lock:
            self._closing = True
            queued = list(self._state.queued.values())
            self._state.queued.clear()
            actives = list(self._state.running.values())
        for launch in queued:
            self.history.runs.finish(launch.run_id, "cancelled", reason="service stopping")
        for a in actives:
            a.stopping = True
            if a.proc.poll() is None:
                a.proc.terminate()
        for a in actives:
            try:
                a.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                a.proc.kill()
        with self._lock:  # each watcher records its run's end, then says so
            self._lock.wait_for(lambda: not self._state.running, timeout=timeout)
