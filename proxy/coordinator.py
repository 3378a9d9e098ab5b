"""The shared proxy service over several cores: a coordinator that places runs on workers.

``coatcheck proxy --workers N`` (default: one per core) runs this process, which imports no
mitmproxy, and N workers (:mod:`proxy.workers`), each mitmproxy with the coatcheck addon. The
coordinator owns ``control.sock``:

- **ping** answers for the whole service: its pid, the runs, each worker's pid and runs;
- **register** goes to the serving worker with the fewest runs, which creates the run's socket
  (a run's identity stays its socket: nothing a sandbox sends can move it to another worker);
- **unregister** goes to the worker that has the run.

Real values are read by each worker from the vault at request time (a rotated value is used at
once everywhere); every worker appends to the one audit log, a line per ``write()``
(:mod:`proxy.appendlog`).

**A worker that dies** (a crash, ``kill -9``) takes its runs with it, and they stay dead: the
kernel closed their sockets with the process, the coordinator removes their directories (the
sandbox's relay answers ``502 proxy_unreachable``), writes one ``worker_lost`` audit line per
run and starts a new worker in the same slot (backing off if it keeps dying young). They are not
moved to the new worker: what the old one knew of them (a run cut off under ``--on-leak
block``, the exact forms of values it learned to scrub) died with it, and a run registered
afresh would start without it. Fail closed; the runner sees its proxy vanish.

**The coordinator dying** takes the workers with it (each asked for ``PR_SET_PDEATHSIG``); a
worker that sees its coordinator gone also removes the coordinator's ``control.sock``.

The process around it (start-up, ready line, shut-down) is :mod:`proxy.coordinated`; its
control socket, :mod:`proxy.control_server`.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path

from core import wire
from core.errors import CoatcheckError, UsageError
from core.home import ensure_private_dir, remove_tree
from core.pids import alive
from proxy.appendlog import AppendLog
from proxy.control_server import ControlServer
from proxy.paths import ProxyPaths
from proxy.workers import WORKERS_DIR, Worker, WorkerGone, WorkerUnreachable, how, lost_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REAP_INTERVAL_S = 2.0
READY_TIMEOUT_S = 120.0  # a worker imports mitmproxy: slow on a loaded machine
PLACE_WAIT_S = 30.0  # a register waits this long for a serving worker (all restarting)
STOP_WAIT_S = 10.0
YOUNG_S = 10.0  # a worker that dies younger than this is restarted after a growing delay
MAX_BACKOFF_S = 30.0
GONE_WAIT_S = 2.0  # a worker that broke a control exchange: is it dying?


class Coordinator:
    def __init__(self, paths: ProxyPaths, worker_argv: list[str], count: int,
                 audit: AppendLog) -> None:  # fmt: skip
        self.paths, self.worker_argv, self.count, self.audit = paths, worker_argv, count, audit
        self.base = paths.sockets / WORKERS_DIR
        self.workers: list[Worker] = []
        self.placed: dict[str, Worker] = {}  # run id -> its worker
        self.owners: dict[str, int | None] = {}  # run id -> the runner's pid
        self.lock = threading.Condition()
        self.stopping = False
        self._born: dict[int, float] = {}  # slot -> when its worker started
        self._delay: dict[int, float] = {}  # slot -> its next restart delay
        self._due: dict[int, float] = {}  # slot -> when to restart it
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.control = ControlServer(paths.control, self.dispatch)

    # -- workers ----------------------------------------------------------------------
    def _spawn(self, slot: int) -> Worker:
        worker = Worker.start(slot, self.base, self.worker_argv, self._exited)
        self._born[slot] = time.monotonic()
        return worker

    def start_workers(self) -> None:
        """Start every worker and wait until all serve; the first failure stops the rest."""
        ensure_private_dir(self.base)
        self.workers = [self._spawn(slot) for slot in range(self.count)]
        deadline = time.monotonic() + READY_TIMEOUT_S
        for w in self.workers:
            w.settled.wait(max(0.0, deadline - time.monotonic()))
            if not w.ready.is_set():
                self.stop_workers()
                code = w.proc.poll()
                raise WorkerFailed(
                    f"proxy worker {w.slot} did not start (exit code {code}); its error is above",
                    code,
                )

    def _exited(self, worker: Worker) -> None:
        """From the worker's watcher thread: fail its runs closed, ask for a restart."""
        with self.lock:
            if self.stopping or worker not in self.workers:
                return
            lost = sorted(worker.runs)
            for run_id in lost:  # under the lock: the id may be registered anew right after
                self.placed.pop(run_id, None)
                self.owners.pop(run_id, None)
                remove_tree(self.paths.run_dir(run_id))
            worker.runs.clear()
            self.lock.notify_all()
        for run_id in lost:
            self.audit.write(lost_line(run_id, worker.pid, worker.exit_code))
        remove_tree(worker.dir)
        if worker.ready.is_set():
            from proxy.reasons import Reason  # rare: the coordinator does without enums

            warn(
                "worker %d (pid %d) exited with %s; its %d run(s) are cut off (audit reason "
                "%s); starting a new one",
                worker.slot, worker.pid, how(worker.exit_code), len(lost), Reason.WORKER_LOST,
            )  # fmt: skip
        else:
            warn("worker %d (pid %d) exited with %s before it served; starting a new one",
                 worker.slot, worker.pid, how(worker.exit_code))  # fmt: skip
        self._wake(b"x")

    def _restart_due(self, now: float) -> None:
        """In the main thread: schedule and start workers to replace the dead ones."""
        for w in list(self.workers):
            if not w.gone.is_set() or w.slot in self._due:  # gone: its directory is cleared
                continue
            young = now - self._born.get(w.slot, now) < YOUNG_S
            delay = min(MAX_BACKOFF_S, self._delay.get(w.slot, 0.25) * 2) if young else 0.0
            self._delay[w.slot] = delay if young else 0.25
            self._due[w.slot] = now + delay
        for slot, due in list(self._due.items()):
            if due <= now and not self.stopping:
                del self._due[slot]
                new = self._spawn(slot)
                with self.lock:
                    self.workers[slot] = new
                threading.Thread(target=self._announce, args=(new,), daemon=True).start()

    def _announce(self, worker: Worker) -> None:
        worker.settled.wait(READY_TIMEOUT_S)
        with self.lock:
            self.lock.notify_all()  # registers waiting for a serving worker
        if worker.ready.is_set():
            warn("worker %d restarted (pid %d)", worker.slot, worker.pid)

    def stop_workers(self) -> None:
        with self.lock:
            self.stopping = True
            workers = list(self.workers)
        for w in workers:
            w.stop()
        for w in workers:
            w.wait(STOP_WAIT_S)
        remove_tree(self.base)

    # -- control ----------------------------------------------------------------------
    def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = wire.op_of(req)
        if op == "ping":
            with self.lock:
                workers = [{"slot": w.slot, "pid": w.pid, "runs": len(w.runs),
                            "ready": w.serving} for w in self.workers]  # fmt: skip
                return {"ok": True, "pid": os.getpid(), "runs": len(self.placed),
                        "workers": workers}  # fmt: skip
        if op == "register":
            return self.register(req)
        return self.unregister(str(req.get("run_id")))

    def _place(self, run_id: str, avoid: set[Worker]) -> Worker:
        deadline = time.monotonic() + PLACE_WAIT_S
        with self.lock:
            while True:
                if run_id in self.placed:
                    raise UsageError(f"run {run_id} is already registered")
                serving = [w for w in self.workers if w.serving and w not in avoid]
                if serving:
                    worker = min(serving, key=lambda w: (len(w.runs), w.slot))
                    worker.runs.add(run_id)
                    self.placed[run_id] = worker
                    return worker
                left = deadline - time.monotonic()
                if self.stopping or left <= 0:
                    raise UsageError("no proxy worker is serving; see the proxy's log")
                self.lock.wait(left)

    def register(self, req: dict[str, Any]) -> dict[str, Any]:
        reg = wire.registration_fields(req)  # well-formed before any worker sees it
        run_id: str = reg["run_id"]
        if Path(run_id).name != run_id or run_id in ("", ".", ".."):
            raise UsageError(f"run id {run_id!r} is not a run id")  # the worker checks more
        avoid: set[Worker] = set()
        while True:
            worker = self._place(run_id, avoid)
            try:
                reply = worker.forward(req)
            except WorkerGone as exc:
                # Dead (and cleaned up after: worker.gone): whatever it did died with it, so
                # the run goes elsewhere. Alive but silent: refused, never on two workers.
                if isinstance(exc, WorkerUnreachable) or worker.gone.wait(GONE_WAIT_S):
                    self._drop(run_id, worker)
                    avoid.add(worker)
                    continue
                reply = wire.refusal(f"the proxy worker for this run is gone ({exc}); retry")
            with self.lock:
                if reply.get("ok") and self.placed.get(run_id) is worker:
                    self.owners[run_id] = reg["owner_pid"]
                    return reply
            self._drop(run_id, worker)
            return reply

    def _drop(self, run_id: str, worker: Worker) -> None:
        with self.lock:
            if self.placed.get(run_id) is worker:
                self.placed.pop(run_id)
                worker.runs.discard(run_id)

    def unregister(self, run_id: str) -> dict[str, Any]:
        with self.lock:
            worker = self.placed.pop(run_id, None)
            self.owners.pop(run_id, None)
            if worker is not None:
                worker.runs.discard(run_id)
        if worker is not None:
            with contextlib.suppress(WorkerGone):  # gone: its runs went with it
                worker.forward(wire.unregister(run_id))
        return {"ok": True}

    # -- lifecycle --------------------------------------------------------------------
    def bind(self) -> None:
        """Take ``control.sock`` (bound, not yet listening: pings fail until all serve)."""
        ensure_private_dir(self.paths.sockets)
        (self.paths.sockets / "runs").mkdir(mode=0o711, exist_ok=True)
        self.control.bind()

    def _wake(self, byte: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, byte)

    def run_until_stopped(self) -> None:
        """The main thread's loop: restarts, reaping runs whose runner died, signals."""

        def on_signal(_sig: int, _frame: Any) -> None:
            self.stopping = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        signal.set_wakeup_fd(self._wake_w)
        next_reap = time.monotonic() + REAP_INTERVAL_S
        while not self.stopping:
            now = time.monotonic()
            wait = min([next_reap, *self._due.values()]) - now
            with contextlib.suppress(InterruptedError):
                select.select([self._wake_r], [], [], max(0.0, wait))
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            now = time.monotonic()
            if not self.stopping:
                self._restart_due(now)
            if now >= next_reap:
                self._reap()
                next_reap = now + REAP_INTERVAL_S

    def _reap(self) -> None:
        with self.lock:
            gone = [r for r, pid in self.owners.items() if not alive(pid)]
        for run_id in gone:
            self.unregister(run_id)

    def close(self) -> None:
        self.control.close()
        self.stop_workers()
        for run_id in list(self.placed):  # a worker that did not stop cleanly left them
            remove_tree(self.paths.run_dir(run_id))
        os.close(self._wake_r)
        os.close(self._wake_w)


class WorkerFailed(CoatcheckError):
    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        if code is not None and code > 0:
            self.exit_code = code


def warn(fmt: str, *args: object) -> None:
    """A warning on stderr, as a log line (no logging module: a tenth of its memory)."""
    print(f"coatcheck proxy: WARNING coatcheck.proxy.coordinator: {fmt % args}", file=sys.stderr)
