"""The warm path from outside, as a user meets it: the installed ``coatcheck`` entry point
(``runner.launch``) with a real ``coatcheck proxy --workers 2`` running, against the usual
in-process path (``runner.cli``) on the same service. Same exit codes, same behaviour."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from proxy import control
from proxy.paths import ProxyPaths
from runner import zygote
from tests.sandbox.helpers import Home

pytestmark = pytest.mark.docker

THIN = (sys.executable, "-m", "runner.launch")
COLD = (sys.executable, "-m", "runner.cli")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A shared proxy service with two workers and its zygote, both answering."""
    home = Home(tmp_path_factory.mktemp("parity"))
    paths = ProxyPaths.for_home(home.path)
    log_path = home.root / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen((*COLD, "proxy", "--workers", "2"), env=home.env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while control.ping(paths.control) is None or not zygote.answers(paths.launch):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "coatcheck proxy never answered"
                time.sleep(0.1)
            yield home
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            shutil.rmtree(paths.sockets, ignore_errors=True)


def _run(home: Home, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=home.env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_ten_concurrent_warm_runs_each_exit_with_their_own_code(service: Home) -> None:
    """Runs forked by the zygote at once: each removes its sandbox while others start (and
    reap orphans); a container gone between the engine's list and its inspect once failed
    other runs with a docker NotFound traceback."""

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return _run(service, (*THIN, "run", "--", "sh", "-c", f"echo run{i}; exit {i}"))

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, range(1, 11)))
    for i, r in enumerate(results, start=1):
        assert (r.returncode, r.stdout) == (i, f"run{i}\n"), r.stderr
        assert "Traceback" not in r.stderr, r.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted_while_ignoring_sigint(home: Home, prefix: tuple[str, ...]) -> int:
    """Exit code of a run started with SIGINT ignored (as a script's background job is),
    sent SIGINT once its command runs; the command would wait for ever, the run's timeout
    ends it (124) unless the SIGINT stops it (130)."""
    argv = (*prefix, "run", "--timeout", "15", "--", "sh", "-c", "echo started; sleep 600")
    proc = subprocess.Popen(argv, env=home.env, stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_ignore_sigint)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=300)
        return proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=30)


def test_an_ignored_sigint_is_ignored_by_a_warm_run_as_by_a_cold_one(service: Home) -> None:
    assert _interrupted_while_ignoring_sigint(service, COLD) == 124
    assert _interrupted_while_ignoring_sigint(service, THIN) == 124


def test_a_warm_run_from_a_deleted_directory_runs(service: Home, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.Popen((*THIN, "run", "--", "echo", "ok"), cwd=gone, env=service.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=gone.rmdir)  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert (proc.returncode, out) == (0, "ok\n"), err
