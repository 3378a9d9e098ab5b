"""``coatcheck serve``'s runs on the warm path (no Docker): the launcher hands a run to the
zygote when one answers (a fake main here), and the supervisor watches it through a
``WarmRun`` as it would a child process; a run outlives no process it must die with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.launch import hand_over
from runner.serve.launcher import Launch, Launcher, ServePaths, WarmRun
from tests.runner.test_zygote import STREAMS, Stdio, short_dir, start_zygote, stop_zygote

__all__ = ["short_dir"]  # a fixture of this module too


@pytest.fixture
def zygote(short_dir: Path) -> Iterator[Path]:
    path = short_dir / "launch.sock"
    proc = start_zygote(path)
    yield path
    stop_zygote(proc)


def warm_wait(zygote: Path, io: Stdio) -> WarmRun:
    launched = hand_over(["run", "wait"], path=zygote, fds=io.fds, env={}, cwd="/",
                         streams=STREAMS)  # fmt: skip
    assert launched is not None
    io.handed()
    assert io.readline() == "waiting\n"
    return WarmRun(launched, ["coatcheck", "run", "wait"])


def test_a_warm_run_is_watched_like_a_child(zygote: Path) -> None:
    run = warm_wait(zygote, Stdio())
    assert run.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        run.wait(timeout=0.01)
    run.terminate()  # SIGTERM, passed on: the run stops and cleans up
    assert run.wait(timeout=60) == 143
    assert run.poll() == 143


def test_a_warm_run_can_be_killed(zygote: Path) -> None:
    run = warm_wait(zygote, Stdio())
    run.kill()
    assert run.wait(timeout=60) == -signal.SIGKILL


def test_the_launcher_hands_a_serve_run_to_the_zygote(zygote: Path, tmp_path: Path) -> None:
    started: list[Any] = []

    def popen(*args: Any, **kw: Any) -> Any:
        started.append(args)
        raise AssertionError("a zygote answers: no child process expected")

    paths = ServePaths(tmp_path / "home")
    launcher = Launcher(paths, popen=popen, launch=zygote)
    try:
        run = launcher.start(Launch("nightly", "r-0123456789abcdef", 1, 'name = "nightly"\n',
                                    tmp_path, 60.0))  # fmt: skip
    finally:
        launcher.close()
    assert isinstance(run, WarmRun)
    assert run.wait(timeout=60) == 3
    said = paths.stderr_file("r-0123456789abcdef").read_text()
    assert said == f"serve run r-0123456789abcdef in {paths.home} home {paths.home}\n"
    assert started == []


def test_without_a_zygote_the_launcher_starts_a_process(short_dir: Path, tmp_path: Path) -> None:
    started: list[Any] = []

    def popen(argv: list[str], **kw: Any) -> Any:
        started.append(argv)
        return subprocess.Popen([sys.executable, "-c", "pass"])

    launcher = Launcher(ServePaths(tmp_path / "home"), popen=popen,
                        launch=short_dir / "launch.sock")  # fmt: skip
    try:
        proc = launcher.start(Launch("nightly", "r-0123456789abcdef", 1, "", tmp_path, 60.0))
    finally:
        launcher.close()
    assert proc.wait(timeout=60) == 0
    assert started and started[0][3:5] == ["runner.cli", "run"]


def test_a_run_dies_with_a_process_that_is_not_its_parent() -> None:
    """--parent-pid on the warm path: the zygote is the run's parent, coatcheck serve is not;
    a pidfd of serve tells the run when it ends (here: a sleeper, then SIGKILL)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    code = (
        "import signal, sys, threading\n"
        "from runner.lifeline import die_with\n"
        "def stopped(n, f):\n"
        "    print('SIGTERM', flush=True)\n"
        "    raise SystemExit(143)\n"
        "signal.signal(signal.SIGTERM, stopped)\n"
        f"die_with({sleeper.pid})\n"
        "print('watching', flush=True)\n"
        "threading.Event().wait()\n"
    )
    run = subprocess.Popen([sys.executable, "-c", code], text=True, stdout=subprocess.PIPE,
                           cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    try:
        assert run.stdout is not None
        assert run.stdout.readline() == "watching\n"
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
        assert run.stdout.readline() == "SIGTERM\n"
        assert run.wait(timeout=60) == 143
    finally:
        for p in (sleeper, run):
            if p.poll() is None:
                p.kill()
                p.wait()
        if run.stdout is not None:
            run.stdout.close()
