"""How ``coatcheck serve`` starts a run: a ``coatcheck run`` process per run.

The child is ``python -I -m runner.cli run --run-id ID --job-base DIR --timeout T [--input F]
SNAPSHOT.toml``: the deployment's job file as it was deployed (its text, kept in the history
database, written under ``$COATCHECK_HOME/serve/jobs``), its relative paths resolved where the
job file was, the run's id (the service records it), and the deployment's maximum runtime as
its time-out. A trigger's body goes in a file, handed to the run as untrusted input.

When the proxy service's zygote answers (``runner/zygote.py``), the run is handed to it
instead, as the thin ``coatcheck`` client does: the same argv, this service's environment,
/dev/null as stdin and stdout and the run's stderr file; it is watched through a ``WarmRun``.

The child stops when the service dies, even with ``kill -9`` (``--parent-pid``): a child of
ours asks Linux to SIGTERM it (PR_SET_PDEATHSIG); the zygote's child watches a pidfd of this
process, and the launch connection closing SIGTERMs it too. PR_SET_PDEATHSIG follows the
*thread* that forked the child, so every child is started from one long-lived launcher thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Union

from core.home import ensure_private_dir
from proxy.paths import ProxyPaths
from runner.launch import LOST, Launched, hand_over

STDERR_TAIL: Final = 4096


@dataclass(frozen=True)
class Launch:
    """One run to start."""

    deployment: str
    run_id: str
    config_version: int
    job_toml: str
    job_base: Path
    timeout: float  # the deployment's maximum runtime (or the job's own time-out, if shorter)
    body: bytes | None = None  # a trigger's body: untrusted input


class ServePaths:
    """The service's own files under ``$COATCHECK_HOME/serve`` (0700)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.root = home / "serve"

    @property
    def control(self) -> Path:
        return self.root / "control.sock"

    def private(self, *parts: str) -> Path:
        return ensure_private_dir(self.root.joinpath(*parts))

    def snapshot(self, launch: Launch) -> Path:
        """The deployment's job file as deployed (written once per config version)."""
        path = self.private("jobs") / f"{launch.deployment}.v{launch.config_version}.toml"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(launch.job_toml, encoding="utf-8")
            os.chmod(tmp, 0o600)
            tmp.replace(path)
        return path

    def input_file(self, launch: Launch) -> Path | None:
        if launch.body is None:
            return None
        path = self.private("inputs") / launch.run_id
        path.write_bytes(launch.body)
        os.chmod(path, 0o600)  # `coatcheck run` hands the sandbox a readable copy of its own
        return path

    def stderr_file(self, run_id: str) -> Path:
        return self.private("logs") / f"{run_id}.stderr"


def run_argv(launch: Launch, snapshot: Path, input_file: Path | None) -> list[str]:
    return [sys.executable, "-I", "-m", "runner.cli", *run_args(launch, snapshot, input_file)]


def run_args(launch: Launch, snapshot: Path, input_file: Path | None) -> list[str]:
    """``coatcheck run ...`` for ``launch`` (argv after the program)."""
    argv = [
        "run",
        "--run-id", launch.run_id,
        "--job-base", str(launch.job_base),
        "--timeout", f"{max(1, int(launch.timeout))}",
        "--parent-pid", str(os.getpid()),
    ]  # fmt: skip
    if input_file is not None:
        argv += ["--input", str(input_file)]
    return [*argv, str(snapshot)]


def stderr_tail(path: Path) -> str:
    """The end of a child's stderr (its own error, when it failed before its run began)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - STDERR_TAIL))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1].removeprefix("coatcheck: error: ")[:500] if lines else ""


Popen = Callable[..., "subprocess.Popen[bytes]"]


class WarmRun:
    """A run the zygote took, as the supervisor sees a child: ``pid``, ``poll``, ``wait``,
    ``terminate`` (SIGTERM, passed on), ``kill`` (SIGKILL through a pidfd) and
    ``returncode``, backed by the launch connection (a thread waits for the exit code)."""

    def __init__(self, launched: Launched, args: list[str]) -> None:
        self.pid = launched.pid
        self.args = args
        self.returncode: int | None = None
        self._launched = launched
        self._killed = False
        self._done = threading.Event()
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except OSError:  # it has ended already: the connection says how
            self._pidfd = None
        threading.Thread(target=self._wait, name=f"warm-run-{self.pid}", daemon=True).start()

    def _wait(self) -> None:
        code = self._launched.wait()
        self.returncode = code if code is not None else (-signal.SIGKILL if self._killed else LOST)
        self._done.set()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if not self._done.is_set():
            self._launched.signal(signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        fd = self._pidfd
        if fd is not None and not self._done.is_set():
            self._killed = True
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)


Child = Union["subprocess.Popen[bytes]", WarmRun]


class Launcher:
    """Starts children from one long-lived thread (see the module docstring): through the
    zygote of the proxy service when one answers (``launch``), else as new processes."""

    def __init__(
        self, paths: ServePaths, *, popen: Popen = subprocess.Popen, launch: Path | None = None
    ) -> None:
        self.paths = paths
        self._popen = popen
        self._launch = launch if launch is not None else ProxyPaths.for_home(paths.home).launch
        self._jobs: queue.Queue[tuple[Launch, Future[Child]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="coatcheck-launcher", daemon=True)
        self._thread.start()

    def start(self, launch: Launch) -> Child:
        done: Future[Child] = Future()
        self._jobs.put((launch, done))
        return done.result()

    def close(self) -> None:
        self._jobs.put(None)

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            launch, done = item
            try:
                done.set_result(self._spawn(launch))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)

    def _spawn(self, launch: Launch) -> Child:
        argv = run_argv(launch, self.paths.snapshot(launch), self.paths.input_file(launch))
        env = {**os.environ, "COATCHECK_HOME": str(self.paths.home)}
        err: IO[Any]
        with open(self.paths.stderr_file(launch.run_id), "wb") as err:
            if self._launch.exists():
                with open(os.devnull, "r+b") as null:
                    stdio = (null.fileno(), null.fileno(), err.fileno())
                    launched = hand_over(argv[4:], path=self._launch, env=env,
                                         cwd=str(self.paths.home), fds=stdio)  # fmt: skip
                if launched is not None:
                    return WarmRun(launched, argv)
            return self._popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                cwd=str(self.paths.home), start_new_session=True,
            )  # fmt: skip
