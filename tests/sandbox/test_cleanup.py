"""security.md: "cleanup that survives crashes (label everything; reap orphans at start)".

``coatcheck run`` is SIGKILLed while its sandbox runs: its ephemeral proxy must notice (its
stdin closes) and exit by itself, and the next ``coatcheck run`` must reap the orphaned
container.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import (
    RUN_LABEL,
    Home,
    Result,
    children,
    coatcheck,
    kill_if_alive,
    pid_state,
    remove_sandboxes,
    start_coatcheck,
    stop,
    wait_for_sandbox,
)

pytestmark = pytest.mark.docker

PROXY_EXIT_S = 10.0


@dataclass
class Crash:
    run_id: str
    proxy_pid: int
    proxy_exit_after: float | None
    socket_dir: Path
    socket_dir_left: bool
    orphan_running_before: bool
    next_run: Result
    left: list[Any]


def _containers(client: Any, run_id: str) -> list[Any]:
    return list(
        client.containers.list(
            all=True, filters={"label": f"{RUN_LABEL}={run_id}"}, ignore_removed=True
        )
    )


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Iterator[Crash]:
    home = Home(tmp_path_factory.mktemp("crash"))
    proc = start_coatcheck(home, "run", "--", "sleep", "60")
    proxy_pid = 0
    try:
        container = wait_for_sandbox(docker_api, proc)
        run_id = container.labels[RUN_LABEL]
        proxies = [(pid, cmd) for pid, cmd in children(proc.pid) if "proxy.service" in cmd]
        assert len(proxies) == 1, children(proc.pid)
        proxy_pid, cmdline = proxies[0]
        socket_dir = Path(cmdline.split("--sockets ", 1)[1].split()[0])
        assert socket_dir.is_dir()
        deadline = time.monotonic() + 30
        while container.status != "running":
            assert time.monotonic() < deadline, container.status
            time.sleep(0.1)
            container.reload()

        proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=10)
        # At once: any other `coatcheck run` on this host may reap the orphan from now on.
        orphan_running = [c.status for c in _containers(docker_api, run_id)] == ["running"]
        exit_after = None
        while time.monotonic() - killed < PROXY_EXIT_S:
            if pid_state(proxy_pid) in (None, "Z"):
                exit_after = time.monotonic() - killed
                break
            time.sleep(0.05)

        next_run = coatcheck(home, "run", "--", "true")
        yield Crash(run_id, proxy_pid, exit_after, socket_dir, socket_dir.exists(), orphan_running,
                    next_run, _containers(docker_api, run_id))  # fmt: skip
    finally:
        stop(proc)
        if proxy_pid:
            kill_if_alive(proxy_pid)
        remove_sandboxes(docker_api, proc.pid)


def test_ephemeral_proxy_exits_by_itself_when_its_runner_is_killed(crash: Crash) -> None:
    assert crash.proxy_exit_after is not None, (
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
