"""The thin ``coatcheck`` entry point (``runner/launch.py``) as a real process, against a zygote
with a fake main at its COATCHECK_HOME's launch socket (no Docker): the run's output and exit
code, Ctrl-C passed on, the client's death stopping the run, and the usual path when no zygote
answers or it refuses, with the same output. Without the heavy imports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy.paths import ProxyPaths
from tests.runner.test_zygote import start_zygote, stop_zygote
from tests.sandbox.helpers import Home

ROOT = Path(__file__).resolve().parents[2]
THIN = (sys.executable, "-m", "runner.launch")
COLD = (sys.executable, "-m", "runner.cli")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    h = Home(tmp_path)
    yield h
    shutil.rmtree(ProxyPaths.for_home(h.path).sockets, ignore_errors=True)


@pytest.fixture
def zygote(home: Home) -> Iterator[Path]:
    path = ProxyPaths.for_home(home.path).launch
    proc = start_zygote(path)
    yield path
    stop_zygote(proc)


def run(argv: tuple[str, ...], home: Home) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=home.env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip


def test_a_warm_run_gives_the_runs_output_and_exit_code(zygote: Path, home: Home) -> None:
    r = run((*THIN, "run", "echo"), home)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")


def test_ctrl_c_to_the_client_reaches_the_run(zygote: Path, home: Home) -> None:
    proc = subprocess.Popen((*THIN, "run", "wait"), cwd=ROOT, env=home.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "waiting\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == "stopped by SIGINT\n"


def test_the_client_killed_stops_the_run(zygote: Path, home: Home) -> None:
    proc = subprocess.Popen((*THIN, "run", "wait"), cwd=ROOT, env=home.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "waiting\n"
    proc.kill()
    proc.wait()
    # The run's process holds the other end of stderr: EOF once it has stopped.
    assert proc.stderr.read() == "stopped by SIGTERM\n"
    proc.stdout.close()
    proc.stderr.close()


def test_a_run_that_ends_without_a_code_after_sigterm_takes_the_client_with_it(
    zygote: Path, home: Home
) -> None:
    """As the usual path would have: the client then dies of the signal it passed on."""
    proc = subprocess.Popen((*THIN, "run", "vanish"), cwd=ROOT, env=home.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "waiting\n"
    proc.terminate()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM


def test_the_client_imports_neither_click_nor_docker(zygote: Path, home: Home) -> None:
    code = (
        "import sys\n"
        "from runner.launch import main\n"
        "code = main(['run', 'echo'])\n"
        "heavy = {'click', 'docker', 'requests', 'cryptography', 'pydantic', 'structlog'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy), code, file=sys.stderr)\n"
    )
    r = run((sys.executable, "-c", code), home)
    assert r.stderr.splitlines()[-1] == "[] 7", r.stderr


@pytest.mark.parametrize(
    "argv",
    [("run", "--help"), ("--help",), ("run",), ("run", "--timeout", "soon", "--", "true")],
    ids=["run-help", "help", "run-without-command", "bad-timeout"],
)
def test_without_a_zygote_the_usual_path_gives_the_same_output(
    home: Home, argv: tuple[str, ...]
) -> None:
    thin, cold = run((*THIN, *argv), home), run((*COLD, *argv), home)
    assert (thin.returncode, thin.stdout, thin.stderr) == (
        cold.returncode, cold.stdout, cold.stderr,
    )  # fmt: skip


def test_a_refusing_zygote_leaves_the_run_to_the_usual_path(home: Home) -> None:
    path = ProxyPaths.for_home(home.path).launch
    proc = start_zygote(path, uid=os.getuid() + 1)  # it refuses this user
    try:
        thin = run((*THIN, "run", "--help"), home)
    finally:
        stop_zygote(proc)
    cold = run((*COLD, "run", "--help"), home)
    assert (thin.returncode, thin.stdout) == (0, cold.stdout)
