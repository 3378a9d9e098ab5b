"""security.md: "cleanup that survives crashes (label everything; reap orphans at start)".

``coatcheck run`` is SIGKILLed: its ephemeral proxy must notice (its stdin closes) and exit by
itself, whether it was already serving or still starting, and the next ``coatcheck run`` must
reap the orphaned container.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import (
    COATCHECK,
    RUN_LABEL,
    Home,
    Result,
    children,
    coatcheck,
    kill_if_alive,
    remove_sandboxes,
    wait_for_sandbox,
)

pytestmark = pytest.mark.docker

PROXY_EXIT_S = 10.0
# The sandbox proves its proxy serves (a refused request: exfil.invalid is on no allowlist, so
# nothing leaves the proxy), then waits to be orphaned.
SERVED_THEN_SLEEP = (
    'curl -s -o /dev/null -w "served %{http_code}\\n" http://exfil.invalid/; sleep 60'
)


@dataclass
class Runner:
    """A ``coatcheck run`` whose output goes to a file (its orphaned proxy may inherit it)."""

    proc: subprocess.Popen[bytes]
    log: Path
    proxies: list[tuple[int, Path]] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ephemeral_proxy(self, timeout: float = 30) -> tuple[int, Path]:
        """(pid, socket dir) of the proxy service this runner started."""
        deadline = time.monotonic() + timeout
        while True:
            found = [(pid, cmd) for pid, cmd in children(self.proc.pid) if "runner.proxyd" in cmd]
            if found:
                pid, cmd = found[0]
                self.proxies.append((pid, Path(cmd.split("--sockets ", 1)[1].split()[0])))
                return self.proxies[-1]
            assert self.proc.poll() is None, f"coatcheck run exited: {self.output()}"
            assert time.monotonic() < deadline, "coatcheck run started no proxy service"
            time.sleep(0.01)


@contextlib.contextmanager
def runner(home: Home, docker_api: Any, *command: str) -> Iterator[Runner]:
    """Start ``coatcheck run -- COMMAND``; in the end kill what is left of it: the runner, its
    proxy (which a crash may have orphaned) and that proxy's socket dir, its containers."""
    log = home.root / "runner.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen((*COATCHECK, "run", "--", *command), env=home.env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out)  # fmt: skip
    run = Runner(proc, log)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for pid, sockets in run.proxies:
            kill_if_alive(pid)
            shutil.rmtree(sockets, ignore_errors=True)
        remove_sandboxes(docker_api, proc.pid)


def exits_within(pid: int, seconds: float = PROXY_EXIT_S) -> bool:
    """Whether ``pid`` (not a child of ours) exits within ``seconds``: waits on its pidfd,
    which becomes readable when the process ends."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # already gone
    try:
        ready, _, _ = select.select([fd], [], [], seconds)
        return bool(ready)
    finally:
        os.close(fd)


def _containers(client: Any, run_id: str) -> list[Any]:
    return list(
        client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={run_id}"}, ignore_removed=True
        )
    )


# -- killed while the sandbox runs and its proxy serves -----------------------------------------
@dataclass
class Crash:
    proxy_pid: int
    proxy_exited: bool
    socket_dir: Path
    socket_dir_left: bool
    orphan_running_before: bool
    next_run: Result
    left: list[Any]


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Iterator[Crash]:
    home = Home(tmp_path_factory.mktemp("crash"))
    with runner(home, docker_api, "sh", "-c", SERVED_THEN_SLEEP) as run:
        proxy_pid, socket_dir = run.ephemeral_proxy()
        run_id = wait_for_sandbox(docker_api, run.proc).labels[RUN_LABEL]
        deadline = time.monotonic() + 60
        while "served 403" not in run.output():
            assert run.proc.poll() is None, run.output()
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.05)

        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=10)
        # At once: any other `coatcheck run` on this host may reap the orphan from now on.
        orphan_running = [c.status for c in _containers(docker_api, run_id)] == ["running"]
        exited = exits_within(proxy_pid)
        left = socket_dir.exists()
        next_run = coatcheck(home, "run", "--", "true")
        yield Crash(proxy_pid, exited, socket_dir, left, orphan_running, next_run,
                    _containers(docker_api, run_id))  # fmt: skip


def test_ephemeral_proxy_exits_by_itself_when_its_runner_is_killed(crash: Crash) -> None:
    assert crash.proxy_exited, (
        f"proxy pid {crash.proxy_pid} still alive {PROXY_EXIT_S}s after its runner was killed"
    )


def test_ephemeral_proxy_removes_its_socket_dir_on_the_way_out(crash: Crash) -> None:
    assert not crash.socket_dir_left, sorted(crash.socket_dir.rglob("*"))


def test_killed_runner_leaves_an_orphan_sandbox(crash: Crash) -> None:
    # The precondition of the next test: nothing else removed the container.
    assert crash.orphan_running_before


def test_next_run_reaps_the_orphaned_sandbox(crash: Crash) -> None:
    assert crash.next_run.code == 0, str(crash.next_run)
    assert crash.left == []


# -- killed while its proxy is still starting --------------------------------------------------
def test_ephemeral_proxy_exits_when_its_runner_is_killed_while_it_starts(
    tmp_path: Path, docker_api: Any
) -> None:
    home = Home(tmp_path)
    with runner(home, docker_api, "sleep", "60") as run:
        proxy_pid, socket_dir = run.ephemeral_proxy()
        run.proc.send_signal(signal.SIGKILL)  # before the service could say it is ready
        run.proc.wait(timeout=10)
        exited = exits_within(proxy_pid)
        left = sorted(socket_dir.rglob("*")) if socket_dir.exists() else None
    assert exited, (
        f"proxy pid {proxy_pid} still alive {PROXY_EXIT_S}s after its runner was killed; "
        f"its socket dir holds {left}"
    )
