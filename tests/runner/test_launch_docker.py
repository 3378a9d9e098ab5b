"""The thin warm path on the real engine: ``coatcheck proxy`` running (with its zygote), the
``coatcheck`` console script hands each ``run`` over and gives back exactly what the usual
path gives: output on the right stream, the exit code, relative paths from where the user
stands, Ctrl-C, and cleanup when the client is killed."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.paths import ProxyPaths
from runner.zygote import answers
from tests.sandbox.helpers import OWNER_LABEL, RUN_LABEL, Home

pytestmark = pytest.mark.docker

SCRIPT = str(Path(sys.executable).parent / "coatcheck")  # the installed console script
COLD = (sys.executable, "-m", "runner.cli")
RUN_ID = re.compile(r"r-[0-9a-f]{16}")
SLEEPER = 'echo "$COATCHECK_RUN_ID"; sleep 120'
HEAVY = ("click", "docker", "requests", "cryptography")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    home = Home(tmp_path_factory.mktemp("launch"))
    paths = ProxyPaths.for_home(home.path)
    log_path = home.root / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen((SCRIPT, "proxy"), env=home.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while not answers(paths.launch):  # the zygote imports for a second or two first
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the zygote never answered"
                time.sleep(0.1)
            yield home
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not paths.launch.exists(), "the service's zygote left launch.sock behind"


def coatcheck(home: Home, *args: str, cwd: Path | None = None,
              exe: tuple[str, ...] = (SCRIPT,)) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run((*exe, *args), env=home.env, cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180)  # fmt: skip


def start_sleeper(home: Home) -> subprocess.Popen[str]:
    """A warm run that prints its run id, then sleeps."""
    return subprocess.Popen((SCRIPT, "run", "--", "sh", "-c", SLEEPER), env=home.env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def first_event(docker_api: Any, since: int, filters: dict[str, str]) -> Any:
    """The first engine event since ``since`` matching ``filters`` (None within 60 s); the
    event stream is closed after it (an open one is a leaked connection)."""
    events = docker_api.events(decode=True, since=since, until=int(time.time()) + 60,
                               filters=filters)  # fmt: skip
    try:
        return next(iter(events), None)
    finally:
        events.close()


def containers_of(docker_api: Any, run_id: str) -> list[Any]:
    return list(docker_api.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}))


def test_a_warm_run_separates_stdout_and_stderr_and_exits_with_the_commands_code(
    home: Home,
) -> None:
    """With -X importtime the client's imports are listed on stderr too: none of the heavy
    ones, so the run was handed over; the run's own lines are exact."""
    r = coatcheck(home, "run", "--", "sh", "-c", "echo out; echo err >&2; exit 7",
                  exe=(sys.executable, "-X", "importtime", SCRIPT))  # fmt: skip
    imports = [x for x in r.stderr.splitlines() if x.startswith("import time:")]
    rest = [x for x in r.stderr.splitlines() if not x.startswith("import time:")]
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\n"
    assert rest[0] == "err"
    assert re.fullmatch(r"coatcheck: run r-[0-9a-f]{16} failed \(exit 7\) in .*", rest[1]), rest
    assert len(rest) == 2, rest
    loaded = {x.split("|")[-1].strip().split(".")[0] for x in imports}
    assert imports and not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_relative_paths_are_the_clients(home: Home, tmp_path: Path) -> None:
    (tmp_path / "job.toml").write_text(
        'name = "relative"\ncommand = ["sh", "-c", "cat \\"$COATCHECK_INPUT\\""]\n'
    )
    (tmp_path / "data.txt").write_text("from the client's directory\n")
    r = coatcheck(home, "run", "job.toml", "--input", "data.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from the client's directory\n"


def test_ctrl_c_stops_the_run_and_removes_its_sandbox(home: Home, docker_api: Any) -> None:
    proc = start_sleeper(home)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert RUN_ID.fullmatch(run_id), run_id
    assert len(containers_of(docker_api, run_id)) == 1
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("coatcheck: aborted"), err
    assert containers_of(docker_api, run_id) == []


def test_killing_the_client_stops_the_run_and_removes_its_sandbox(
    home: Home, docker_api: Any
) -> None:
    since = int(time.time()) - 1
    proc = start_sleeper(home)
    assert proc.stdout is not None and proc.stderr is not None
    run_id = proc.stdout.readline().strip()
    assert RUN_ID.fullmatch(run_id), run_id
    proc.kill()
    proc.wait()
    destroyed = {"label": f"{RUN_LABEL}={run_id}", "event": "destroy"}
    assert first_event(docker_api, since, destroyed) is not None, "the sandbox was not removed"
    assert "stopped by SIGTERM" in proc.stderr.read()  # the run's process said so, and ended
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.parametrize(
    "args",
    [("--secret", "NOT_IN_THE_VAULT", "--", "true"), ("--env", "NO_EQUALS", "--", "true")],
    ids=["missing-secret", "bad-env-flag"],
)
def test_an_error_reads_the_same_as_on_the_usual_path(home: Home, args: tuple[str, ...]) -> None:
    warm = coatcheck(home, "run", *args)
    cold = coatcheck(home, "run", *args, exe=COLD)
    assert warm.returncode == cold.returncode != 0
    assert (warm.stdout, RUN_ID.sub("r-ID", warm.stderr)) == (
        cold.stdout, RUN_ID.sub("r-ID", cold.stderr),
    )  # fmt: skip


def test_serve_runs_are_forked_by_the_zygote_and_stop_when_serve_is_killed(
    tmp_path: Path, docker_api: Any
) -> None:
    """coatcheck serve hands its runs to its proxy's zygote too; `kill -9` of serve still
    stops the run and removes its sandbox (the run watches serve through a pidfd)."""
    from tests.serve.helpers import deploy, ok, remove_containers, running_container, start_serve

    home = Home(tmp_path)
    service = start_serve(home, tmp_path).wait_ready()
    run_id = ""
    try:
        deadline = time.monotonic() + 90
        while not answers(ProxyPaths.for_home(home.path).launch):
            assert time.monotonic() < deadline, "serve's zygote never answered"
            time.sleep(0.1)
        deploy(home, tmp_path, "sleeper", 'command = ["sleep", "300"]\n')
        found = RUN_ID.search(ok(home, "deployments", "run", "sleeper"))
        assert found is not None
        run_id = found.group(0)
        owner = int(running_container(docker_api, run_id).labels[OWNER_LABEL])
        parent = Path(f"/proc/{owner}/stat").read_text().rpartition(")")[2].split()[1]
        assert "runner.zygote" in Path(f"/proc/{parent}/cmdline").read_text()
        since = int(time.time()) - 1
        service.proc.kill()
        service.proc.wait()
        destroyed = {"label": f"{RUN_LABEL}={run_id}", "event": "destroy"}
        assert first_event(docker_api, since, destroyed), "the run outlived coatcheck serve"
    finally:
        service.close()
        if run_id:
            remove_containers(docker_api, run_id)
