"""The shared service's worker processes: each one is mitmproxy with the coatcheck addon
(:mod:`proxy.service` in worker mode), serving the runs the coordinator placed on it.

A worker gets a private directory of its own under the socket directory
(``workers/<slot>/``: its control socket, its upstream-trust bundles), is started in a session
of its own (a Ctrl-C reaches the coordinator, which stops it) and dies with the coordinator
(``PR_SET_PDEATHSIG``). It prints one JSON line on stdout once it serves; its stdout closing
means it is gone. A watcher thread per worker waits for both and reports the exit.

The argv comes from the caller (runner.proxyd composes the vault in: the proxy never imports
it). Nothing here imports mitmproxy: the coordinator stays small.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import UsageError
from core.home import remove_tree
from core.unixline import Unreachable, exchange

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WORKERS_DIR = "workers"
WORKERS_FLAG = "--workers"
WORKER_DIR_FLAG = "--worker-dir"  # a worker's own directory: the service runs as a worker
MAX_REPLY = 4 * 1024 * 1024
MAX_WORKERS = 64
PARENT_EXIT_WAIT_S = 2.0  # CoordinatorSocket: how long a dying coordinator may take


def default_count() -> int:
    """One worker per core this process may run on, at most MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def count_of(argv: list[str]) -> int | None:
    """The ``--workers N`` in ``argv`` (the last one), None when there is none."""
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg == WORKERS_FLAG and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(WORKERS_FLAG + "="):
            found = arg.split("=", 1)[1]
    if found is None:
        return None
    if not found.isdigit() or not 1 <= int(found) <= MAX_WORKERS:
        raise UsageError(f"--workers {found!r}: use a whole number from 1 to {MAX_WORKERS}")
    return int(found)


class WorkerGone(Exception):
    """The worker did not answer on its control socket (``str(exc)`` says why)."""


class WorkerUnreachable(WorkerGone):
    """Nothing accepts on the worker's control socket: the request never reached it."""


class Worker:
    """One worker process and the runs placed on it (guarded by the coordinator's lock)."""

    def __init__(self, slot: int, home: Path, proc: subprocess.Popen[bytes]) -> None:
        self.slot, self.dir, self.proc = slot, home, proc
        self.pid = proc.pid
        self.runs: set[str] = set()
        self.ready = threading.Event()  # it serves
        self.settled = threading.Event()  # it serves, or it is gone
        self.gone = threading.Event()  # it exited, and the coordinator has cleaned up after it
        self.exit_code: int | None = None

    @property
    def control(self) -> Path:
        return self.dir / "control.sock"

    @property
    def serving(self) -> bool:
        return self.ready.is_set() and self.exit_code is None

    @classmethod
    def start(
        cls, slot: int, base: Path, argv: list[str], on_exit: Callable[[Worker], None]
    ) -> Worker:
        """Start worker ``slot`` (call from the thread that lives as long as the coordinator:
        the worker's death signal follows the thread that started it)."""
        home = base / str(slot)
        remove_tree(home)
        home.mkdir(mode=0o700, parents=True)
        proc = subprocess.Popen(  # noqa: S603 - our own service, argv from runner.proxyd
            [*argv, f"{WORKER_DIR_FLAG}={home}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        worker = cls(slot, home, proc)
        threading.Thread(
            target=worker._watch, args=(on_exit,), name=f"worker-{slot}", daemon=True
        ).start()
        return worker

    def _watch(self, on_exit: Callable[[Worker], None]) -> None:
        assert self.proc.stdout is not None  # noqa: S101
        line = self.proc.stdout.readline()  # its ready line; nothing (EOF) if it died first
        with contextlib.suppress(ValueError):
            said = json.loads(line) if line else None
            if isinstance(said, dict) and said.get("ok"):
                self.ready.set()
        self.settled.set()
        self.exit_code = self.proc.wait()
        self.proc.stdout.close()
        try:
            on_exit(self)
        finally:
            self.gone.set()

    def forward(self, request: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
        """Send one control request to the worker; its reply (a dict with ``ok``)."""
        try:
            buf = exchange(self.control, json.dumps(request).encode() + b"\n", timeout=timeout,
                           max_line=MAX_REPLY)  # fmt: skip
            reply = json.loads(buf)
        except Unreachable as exc:
            raise WorkerUnreachable(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise WorkerGone(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise WorkerGone("a reply that is not a control reply")
        return reply

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()

    def wait(self, timeout: float) -> None:
        """Wait for the worker to exit; kill it if it has not within ``timeout`` seconds."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()


class CoordinatorSocket:
    """A worker's note of its coordinator's ``control.sock``: should the coordinator die
    without removing it (``kill -9``), the worker, stopping because of that, removes it (that
    very socket, not a newer coordinator's).

    The death signal comes when the coordinator's *thread* that started the worker ends, which
    can be before the rest of a killed coordinator has (the worker's parent is then still the
    coordinator). A coordinator that stops normally removes the socket before it stops its
    workers, so a socket still there means it is dying, or alive and this worker was stopped on
    its own: the worker gives the coordinator ``PARENT_EXIT_WAIT_S`` to be gone."""

    def __init__(self, path: Path) -> None:
        self.path, self.parent, self.ident = path, os.getppid(), _ident(path)
        try:
            self._parent_fd: int | None = os.pidfd_open(self.parent)
        except OSError:  # Linux before 5.3: only a parent already replaced counts
            self._parent_fd = None

    def remove_if_orphaned(self, wait: float = PARENT_EXIT_WAIT_S) -> None:
        if self.ident is None or _ident(self.path) != self.ident:
            return
        if os.getppid() == self.parent and not self._parent_exits(wait):
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _parent_exits(self, wait: float) -> bool:
        if self._parent_fd is None:
            return False
        return bool(select.select([self._parent_fd], [], [], wait)[0])


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def count_for(argv: list[str]) -> int:
    """How many workers the service that ``argv`` starts runs; 1 means no coordinator: an
    ephemeral service (its start-up time matters), a worker itself, a request for help."""
    if is_worker(argv) or any(a in ("--ephemeral", "-h", "--help") for a in argv):
        return 1
    count = count_of(argv)
    return default_count() if count is None else count


def is_worker(argv: list[str]) -> bool:
    """Does ``argv`` start a worker of a coordinator?"""
    return any(a == WORKER_DIR_FLAG or a.startswith(WORKER_DIR_FLAG + "=") for a in argv)


def lost_line(run_id: str, pid: int, code: int | None) -> str:
    """The audit line of a run cut off because its worker died (as the workers' lines: JSON,
    the keys of core.logs). Imported here: a worker is rarely lost."""
    import datetime

    from core import logs
    from proxy.reasons import Reason

    entry: dict[str, Any] = {
        logs.RUN_ID: run_id,
        logs.METHOD: None,
        logs.HOST: None,
        logs.PORT: None,
        logs.PATH: None,
        logs.STATUS: 0,
        logs.DECISION: "deny",
        logs.REASON: str(Reason.WORKER_LOST),
        logs.SECRETS_INJECTED: [],
        "error": f"its proxy worker (pid {pid}) exited with {how(code)}; the run is cut off",
        logs.EVENT: logs.AUDIT_EVENT,
        "ts": datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(entry) + "\n"


def how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"code {code}"
