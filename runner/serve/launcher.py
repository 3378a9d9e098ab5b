"""How ``coatcheck serve`` starts a run: a ``coatcheck run`` child process per run.

The child is ``python -I -m runner.cli run --run-id ID --job-base DIR --timeout T [--input F]
SNAPSHOT.toml``: the deployment's job file as it was deployed (its text, kept in the history
database, written under ``$COATCHECK_HOME/serve/jobs``), its relative paths resolved where the
job file was, the run's id (the service records it), and the deployment's maximum runtime as
its time-out. A trigger's body goes in a file, handed to the run as untrusted input.

The child asks Linux to SIGTERM it when its parent dies (``--parent-pid``; PR_SET_PDEATHSIG),
so a service killed with ``kill -9`` leaves no run behind. That signal follows the *thread*
that forked the child, so every child is started from one long-lived launcher thread.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from core.home import ensure_private_dir

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
    argv = [
        sys.executable, "-I", "-m", "runner.cli", "run",
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


class Launcher:
    """Starts children from one long-lived thread (see the module docstring)."""

    def __init__(self, paths: ServePaths, *, popen: Popen = subprocess.Popen) -> None:
        self.paths = paths
        self._popen = popen
        self._jobs: queue.Queue[tuple[Launch, Future[subprocess.Popen[bytes]]] | None] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=self._serve, name="coatcheck-launcher", daemon=True)
        self._thread.start()

    def start(self, launch: Launch) -> subprocess.Popen[bytes]:
        done: Future[subprocess.Popen[bytes]] = Future()
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

    def _spawn(self, launch: Launch) -> subprocess.Popen[bytes]:
        argv = run_argv(launch, self.paths.snapshot(launch), self.paths.input_file(launch))
        env = {**os.environ, "COATCHECK_HOME": str(self.paths.home)}
        err: IO[Any]
        with open(self.paths.stderr_file(launch.run_id), "wb") as err:
            return self._popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env,
                cwd=str(self.paths.home), start_new_session=True,
            )  # fmt: skip
