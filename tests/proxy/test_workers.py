"""The shared service over several workers: a coordinator places runs, routes unregisters,
answers pings for all; the vault reaches every worker; the coordinator's death leaves nothing.

One service with two workers serves the module (a run's identity is its socket, so the tests'
runs don't disturb each other); tests that kill processes start their own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.errors import RegistrationRefused, UsageError
from proxy import workers
from tests.conftest import TEST_NAMES, client_for, vault_key_of
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import Upstream, only_received_with, tagged
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

API = "api.coatcheck.test"


def start_pool(home: Path, sockets: Path, ca_file: Path, n: int = 2) -> ProxyHarness:
    with vault_key_of(home):
        return start_proxy(
            home,
            sockets,
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={name}:127.0.0.1" for name in TEST_NAMES),
            workers=n,
        )


@pytest.fixture(scope="module")
def pool_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pool")


@pytest.fixture(scope="module")
def pool_vault(pool_home: Path) -> Vault:
    return Vault.open(pool_home, keystore=FileKeystore(pool_home / "vault.key"))


@pytest.fixture(scope="module")
def pool(pool_home: Path, pool_vault: Vault, ca_file: Path) -> Iterator[ProxyHarness]:
    pool_vault.list()  # the key exists before the workers look for it
    harness = start_pool(pool_home, Path(f"/tmp/cc-pool-{os.getpid()}"), ca_file)
    yield harness
    harness.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll a process-external condition (a pid, a socket file): nothing to await on."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)


def placements(proxy: ProxyHarness) -> dict[int, int]:
    """Runs per worker pid."""
    return {int(w["pid"]): int(w["runs"]) for w in proxy.ping()["workers"]}


def get(proxy: ProxyHarness, run: Run, upstream: Upstream, secret: str, tag: str) -> str:
    """One request of ``run`` with its placeholder; what the upstream got as Authorization."""
    ph = run.placeholders[secret]
    with client_for(run, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 200, r.headers.get("x-coatcheck-reason")
    assert ph in r.text  # the echo came back scrubbed
    return only_received_with(upstream, tag).header("Authorization") or ""


# -- the pure parts -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "count"),
    [
        pytest.param(["--workers", "3"], 3, id="flag"),
        pytest.param(["--workers=2", "--workers=4"], 4, id="last-wins"),
        pytest.param(["--ephemeral", "--workers", "4"], 1, id="ephemeral-is-one-process"),
        pytest.param(["--worker-dir=/x", "--workers=4"], 1, id="a-worker-is-one-process"),
        pytest.param(["--help"], 1, id="help"),
    ],
)
def test_worker_count_of_a_service(argv, count):
    assert workers.count_for(argv) == count


def test_default_is_one_worker_per_core():
    assert workers.count_for([]) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("bad", ["0", "-1", "two", "65"])
def test_bad_worker_count_says_what_to_use(bad):
    with pytest.raises(UsageError, match="whole number from 1 to 64"):
        workers.count_of(["--workers", bad])


# -- the coordinator ------------------------------------------------------------------------
def test_ping_reports_every_worker(pool):
    reply = pool.ping()
    assert reply["pid"] == pool.proc.pid
    assert [w["slot"] for w in reply["workers"]] == [0, 1]
    pids = {w["pid"] for w in reply["workers"]}
    assert len(pids) == 2 and pool.proc.pid not in pids
    assert all(w["ready"] for w in reply["workers"])
    assert reply["runs"] == sum(w["runs"] for w in reply["workers"])


def test_register_places_each_run_on_the_worker_with_fewest(pool, pool_vault):
    before = placements(pool)
    runs = [pool.register() for _ in range(4)]
    after = placements(pool)
    assert sum(after.values()) == sum(before.values()) + 4
    assert max(after.values()) - min(after.values()) <= max(
        1, max(before.values()) - min(before.values())
    )
    for run in runs:
        pool.unregister(run)
    assert placements(pool) == before


def test_a_run_is_served_by_the_worker_that_made_its_socket(pool):
    run = pool.register()
    owners = [pid for pid in pool.worker_pids() if _listens_on(pid, run.socket)]
    assert len(owners) == 1
    pool.unregister(run)


def test_unregister_goes_to_the_runs_worker(pool):
    run = pool.register()
    assert Path(run.socket).exists()
    total = pool.ping()["runs"]
    pool.unregister(run)
    assert not Path(run.socket).parent.exists()  # the worker removed the run's directory
    assert pool.ping()["runs"] == total - 1
    with pytest.raises(OSError):
        _unix(run.socket)


def test_a_run_id_is_taken_once_across_workers(pool):
    run = pool.register()
    with pytest.raises(RegistrationRefused, match="already registered"):
        pool.register(run_id=run.run_id)
    pool.unregister(run)


def test_a_worker_refusal_comes_back_to_the_runner(pool):
    before = pool.ping()["runs"]
    with pytest.raises(RegistrationRefused, match="no secret named NO_SUCH"):
        pool.register(("NO_SUCH",))
    assert pool.ping()["runs"] == before


def test_rotation_and_removal_reach_runs_on_every_worker(pool, pool_vault, upstream, tag):
    pool_vault.set("POOL_TOKEN", SecretValue("pool-v1-" + "a" * 20), [API])
    a, b = pool.register(("POOL_TOKEN",)), pool.register(("POOL_TOKEN",))
    assert _worker_of(pool, a) != _worker_of(pool, b)
    for run in (a, b):
        assert get(pool, run, upstream, "POOL_TOKEN", f"v1-{run.run_id}-{tag}").endswith("a" * 20)
    pool_vault.set("POOL_TOKEN", SecretValue("pool-v2-" + "b" * 20), [API])
    for run in (a, b):
        got = get(pool, run, upstream, "POOL_TOKEN", f"v2-{run.run_id}-{tag}")
        assert got == "Bearer pool-v2-" + "b" * 20
    pool_vault.remove("POOL_TOKEN")
    for run in (a, b):
        got = get(pool, run, upstream, "POOL_TOKEN", f"rm-{run.run_id}-{tag}")
        assert got == f"Bearer {run.placeholders['POOL_TOKEN']}"  # injected nowhere
    assert "pool-v" not in pool.audit_log.read_text()
    pool.unregister(a)
    pool.unregister(b)


def test_every_worker_writes_to_the_one_audit_log(pool, pool_vault, upstream, tag):
    pool_vault.set("AUDIT_TOKEN", SecretValue("audit-" + "c" * 20), [API])
    a, b = pool.register(("AUDIT_TOKEN",)), pool.register(("AUDIT_TOKEN",))
    assert _worker_of(pool, a) != _worker_of(pool, b)
    for run in (a, b):
        get(pool, run, upstream, "AUDIT_TOKEN", f"{run.run_id}-{tag}")
        [line] = pool.audit_for(run)
        assert line["secrets_injected"] == ["AUDIT_TOKEN"] and line["status"] == 200
    pool.unregister(a)
    pool.unregister(b)


def test_audit_lines_stay_whole_under_load_on_every_worker(pool, pool_vault, upstream, tag):
    """Runs on both workers, requests at once with long paths (long audit lines): every line
    of the one audit log parses and each request has its line."""
    pool_vault.set("LOAD_TOKEN", SecretValue("load-" + "e" * 20), [API])
    runs = [pool.register(("LOAD_TOKEN",)) for _ in range(4)]
    assert len({_worker_of(pool, run) for run in runs}) == 2
    per_run, long_path = 15, "/echo/" + "p" * 6000

    def hammer(run: Run) -> None:
        ph = run.placeholders["LOAD_TOKEN"]
        with client_for(run, pool.ca_cert) as c:
            for i in range(per_run):
                url = tagged(f"https://{API}:{upstream.port}{long_path}", f"{tag}-{i}")
                assert c.get(url, headers={"Authorization": f"Bearer {ph}"}).status_code == 200

    with ThreadPoolExecutor(len(runs)) as ex:
        list(ex.map(hammer, runs))
    text = pool.audit_log.read_text()
    assert text.endswith("\n")
    entries = [json.loads(line) for line in text.splitlines()]  # a torn line would not parse
    for run in runs:
        mine = [e for e in entries if e.get("run_id") == run.run_id]
        assert len(mine) == per_run and all(e["path"] == long_path for e in mine)
        pool.unregister(run)


def test_the_coordinator_imports_neither_mitmproxy_nor_the_vault():
    probe = (
        "import sys; from proxy import coordinated; from runner import proxyd; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mitmproxy', 'vault', 'asyncio'}))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_the_coordinator_is_smaller_than_a_worker(pool):
    rss = {pid: _rss_kb(pid) for pid in pool.pids()}
    assert rss[pool.proc.pid] < min(rss[p] for p in pool.worker_pids())


# -- the coordinator dying ------------------------------------------------------------------
def test_a_killed_coordinator_takes_its_workers_and_leaves_no_sockets(
    tmp_path, pool_vault, ca_file, upstream, tag
):
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).set(
        "GONE_TOKEN", SecretValue("gone-" + "d" * 20), [API]
    )
    sockets = Path(f"/tmp/cc-die-{os.getpid()}")
    proxy = start_pool(home, sockets, ca_file)
    try:
        runs = [proxy.register(("GONE_TOKEN",)) for _ in range(2)]
        pids = proxy.worker_pids()
        get(proxy, runs[0], upstream, "GONE_TOKEN", tag)
        os.kill(proxy.proc.pid, signal.SIGKILL)
        proxy.proc.wait()
        wait_until(lambda: not any(_alive(p) for p in pids), "the workers exited")
        left = [p for p in sockets.rglob("*") if p.is_socket()]
        launch = [p for p in left if p.name == "launch.sock"]  # runner.zygote's, not ours
        assert [p for p in left if p not in launch] == []
        with pytest.raises(OSError):
            _unix(runs[0].socket)
    finally:
        proxy.close()


def test_stopping_the_coordinator_stops_the_workers_cleanly(tmp_path, ca_file):
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).list()
    sockets = Path(f"/tmp/cc-stop-{os.getpid()}")
    proxy = start_pool(home, sockets, ca_file)
    try:
        run = proxy.register()
        pids = proxy.worker_pids()
        proxy.proc.send_signal(signal.SIGINT)  # Ctrl-C: reaches the coordinator only
        assert proxy.proc.wait(timeout=60) == 0
        assert not any(_alive(p) for p in pids)
        assert not Path(run.socket).exists() and not proxy.paths.control.exists()
        assert not (sockets / workers.WORKERS_DIR).exists()
    finally:
        proxy.close()


def test_a_service_already_answering_is_not_replaced(pool, tmp_path, ca_file):
    with pytest.raises(RuntimeError, match="exited before it was ready"):
        start_pool(pool.home, pool.sockets, ca_file)
    assert pool.ping()["ok"]


# -- helpers --------------------------------------------------------------------------------
def _unix(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    finally:
        s.close()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError(pid)


def _listens_on(pid: int, path: str) -> bool:
    """Does process ``pid`` hold the listening Unix socket bound at ``path``?"""
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path and fields[5] == "01":  # listening
            inodes.add(fields[6])
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def _worker_of(proxy: ProxyHarness, run: Run) -> int:
    [pid] = [p for p in proxy.worker_pids() if _listens_on(p, run.socket)]
    return pid


# -- coatcheck proxy --workers ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "passed"),
    [([], []), (["--workers", "3"], ["--workers=3"]), (["--workers=1"], ["--workers=1"])],
    ids=["default", "three", "one"],
)
def test_coatcheck_proxy_passes_workers_on(monkeypatch, flags, passed):
    from click.testing import CliRunner

    from runner import proxyd
    from runner.cli_proxy import proxy_command

    seen: list[list[str]] = []
    monkeypatch.setattr(proxyd, "main", lambda argv: seen.append(argv) or 0)
    result = CliRunner().invoke(proxy_command, flags)
    assert result.exit_code == 0, result.output
    assert [a for a in seen[0] if a.startswith("--workers")] == passed


def test_coatcheck_proxy_refuses_zero_workers():
    from click.testing import CliRunner

    from runner.cli_proxy import proxy_command

    result = CliRunner().invoke(proxy_command, ["--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


# -- coatcheck serve's own proxy ------------------------------------------------------------
SERVE_PARENT = """
import sys, threading
from pathlib import Path
from runner.serve.service import ensure_proxy
proc = ensure_proxy(Path(sys.argv[1]), threading.Event())
print(proc.pid, flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_serve_starts_its_proxy_with_default_workers_and_it_dies_with_serve(tmp_path):
    """`coatcheck serve` starts the proxy through runner.proxyd.command(--parent-pid): it gets
    one worker per core, and serve's death (kill -9) takes coordinator and workers along."""
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).list()
    env = dict(os.environ, COATCHECK_HOME=str(home),
               COATCHECK_VAULT_KEY_FILE=str(home / "vault.key"))  # fmt: skip
    serve = subprocess.Popen([sys.executable, "-I", "-c", SERVE_PARENT, str(home)], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert serve.stdout is not None and serve.stdin is not None
    coordinator = int(serve.stdout.readline())
    try:
        from proxy import control
        from proxy.paths import ProxyPaths

        paths = ProxyPaths.for_home(home)
        reply = control.ping(paths.control)
        assert reply is not None and reply["pid"] == coordinator
        pids = [w["pid"] for w in reply["workers"]]
        assert len(pids) == workers.default_count() > 1 or len(pids) == 0
        serve.kill()
        serve.wait()
        everyone = [coordinator, *pids]
        wait_until(lambda: not any(_alive(p) for p in everyone), "the proxy stopped")
        wait_until(lambda: not paths.control.exists(), "control.sock removed")
    finally:
        serve.stdin.close()
        serve.stdout.close()
        if serve.poll() is None:
            serve.kill()
            serve.wait()
