"""Runs on different workers: a run is its socket, whichever worker serves it.

Run A's socket is served by one worker, run B's by another. Nothing A's sandbox sends through
its socket makes it B: B's placeholder sent by A is not injected (and is flagged), claims in the
request change nothing, and A's socket never reaches B's worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_NAMES, client_for, vault_key_of
from tests.security.conftest import API, new_canary
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import only_received_with, tagged
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

NAME = "ISO_WORKER_TOKEN"


@pytest.fixture(scope="module")
def canary_value() -> str:
    return new_canary()


@pytest.fixture(scope="module")
def pool(
    tmp_path_factory: pytest.TempPathFactory, ca_file: Path, canary_value: str
) -> Iterator[ProxyHarness]:
    home = tmp_path_factory.mktemp("iso-workers")
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).set(
        NAME, SecretValue(canary_value), [API]
    )
    with vault_key_of(home):
        harness = start_proxy(
            home,
            Path(f"/tmp/cc-isow-{os.getpid()}"),
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES),
            workers=2,
        )
    yield harness
    harness.close()


@pytest.fixture
def two_runs(pool: ProxyHarness) -> Iterator[tuple[Run, Run]]:
    a, b = pool.register((NAME,)), pool.register((NAME,))
    assert _holder(pool, a) != _holder(pool, b), "the runs should be on different workers"
    yield a, b
    pool.unregister(a)
    pool.unregister(b)


def _holder(proxy: ProxyHarness, run: Run) -> int:
    """The pid of the worker holding ``run``'s listening socket."""
    inode = next(
        line.split()[6]
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]
        if line.split()[7:8] == [run.socket]
    )
    [pid] = [
        pid
        for pid in proxy.worker_pids()
        if f"socket:[{inode}]" in {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    ]
    return pid


def test_run_a_sending_run_bs_placeholder_gets_nothing_injected(
    pool, upstream, two_runs, canary_value, tag
):
    a, b = two_runs
    ph_b = b.placeholders[NAME]
    with client_for(a, pool.ca_cert) as c:
        r = c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph_b}", "X-Coatcheck-Run": b.run_id},
        )
    assert r.status_code == 200
    assert only_received_with(upstream, tag).header("Authorization") == f"Bearer {ph_b}"
    assert canary_value not in r.text
    [line] = [e for e in pool.audit_for(a) if e["event"] == "proxy_request"]
    assert line["secrets_injected"] == []
    [leak] = [e for e in pool.audit_for(a) if e["event"] == "placeholder_leak"]
    assert leak["leaked_placeholders"] == ["<other_run>"]
    assert pool.audit_for(b) == [], "run A's request was attributed to run B"
    assert canary_value not in pool.audit_log.read_text()


def test_each_run_gets_its_own_value_through_its_own_worker(pool, upstream, two_runs, tag):
    for run in two_runs:
        ph = run.placeholders[NAME]
        with client_for(run, pool.ca_cert) as c:
            r = c.get(
                tagged(f"https://{API}:{upstream.port}/echo", f"{run.run_id}-{tag}"),
                headers={"Authorization": f"Bearer {ph}"},
            )
        assert r.status_code == 200 and r.json()["headers"]["Authorization"] == f"Bearer {ph}"
        [line] = [e for e in pool.audit_for(run) if e["event"] == "proxy_request"]
        assert line["secrets_injected"] == [NAME]


def test_a_workers_control_socket_is_private_and_not_a_run(pool, two_runs):
    """A worker's control socket is the coordinator's to use: 0600, in a 0700 directory the
    sandboxes never get (only a run's own directory is mounted into its sandbox)."""
    a, _b = two_runs
    for d in (pool.sockets / "workers").iterdir():
        assert (d.stat().st_mode & 0o777) == 0o700
        assert ((d / "control.sock").stat().st_mode & 0o777) == 0o600
    assert (pool.sockets / "workers").stat().st_mode & 0o777 == 0o700
    assert Path(a.socket).parent == pool.sockets / "runs" / a.run_id
