"""A proxy worker killed under its runs: they fail closed, never open, and the service goes on.

The attack is ``kill -9`` of the worker that serves a run with a live keep-alive connection
(an OOM kill, a crash in mitmproxy). Afterwards nothing of that run may reach an upstream: its
open connection is dead, its socket accepts nothing (the sandbox's relay answers 502
``proxy_unreachable``), the audit log names the run with ``worker_lost``, the real value went
nowhere new; the other worker's runs are untouched, a new worker takes the slot and new runs
are served.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import relay as sandbox_relay
from tests.conftest import TEST_NAMES, client_for, vault_key_of
from tests.security.conftest import API, new_canary
from tests.security.wire import Closed, open_tunnel
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import Upstream, only_received_with, received_with, tagged
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

NAME = "CRASH_TOKEN"


@pytest.fixture
def canary_value() -> str:
    return new_canary()


@pytest.fixture
def pool(tmp_path: Path, ca_file: Path, canary_value: str) -> Iterator[ProxyHarness]:
    """A service of two workers (this test kills one), with the canary as NAME's value."""
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).set(
        NAME, SecretValue(canary_value), [API]
    )
    with vault_key_of(home):
        harness = start_proxy(
            home,
            Path(f"/tmp/cc-crash-{os.getpid()}"),
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES),
            workers=2,
        )
    yield harness
    harness.close()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Poll another process's state (the coordinator's ping): there is no event to await."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)


def worker_of(proxy: ProxyHarness, run: Run) -> dict[str, int]:
    """The ping entry of the worker whose process holds ``run``'s listening socket."""
    inode = _listening_inode(run.socket)
    for w in proxy.ping()["workers"]:
        links = {os.readlink(fd) for fd in Path(f"/proc/{w['pid']}/fd").iterdir()}
        if f"socket:[{inode}]" in links:
            return w
    raise AssertionError(f"no worker holds {run.socket}")


def _listening_inode(path: str) -> str:
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path:
            return fields[6]
    raise AssertionError(f"nothing listens at {path}")


def request(proxy: ProxyHarness, run: Run, upstream: Upstream, tag: str) -> httpx.Response:
    ph = run.placeholders[NAME]
    with client_for(run, proxy.ca_cert) as c:
        return c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={"Authorization": f"Bearer {ph}"},
        )


def test_a_killed_workers_runs_fail_closed_and_its_slot_is_served_again(
    pool, upstream, canary_value, tag, monkeypatch
):
    victim, bystander = pool.register((NAME,)), pool.register((NAME,))
    lost, kept = worker_of(pool, victim), worker_of(pool, bystander)
    assert lost["pid"] != kept["pid"]
    port = upstream.port
    head = [("Host", f"{API}:{port}"), ("Authorization", f"Bearer {victim.placeholders[NAME]}")]
    conn = open_tunnel(victim.proxy_url, f"{API}:{port}", pool.ca_cert, sni=API)
    try:
        first = conn.request("GET", tagged("/echo", f"before-{tag}"), head)
        assert first.status == 200
        assert only_received_with(upstream, f"before-{tag}").header("Authorization") == (
            f"Bearer {canary_value}"
        )
        os.kill(lost["pid"], signal.SIGKILL)

        # the run's open connection is dead: its next request goes nowhere
        with pytest.raises((Closed, OSError)):
            conn.request("GET", tagged("/echo", f"after-{tag}"), head)
    finally:
        conn.close()
    # the coordinator notices, cuts the run off, and starts a new worker in the slot
    wait_until(lambda: _slot(pool, lost["slot"])["pid"] != lost["pid"], "a new worker")
    wait_until(lambda: _slot(pool, lost["slot"])["ready"], "the new worker serving")

    # the run's socket is gone: a new connection is refused at once, and the sandbox's relay
    # says so (it waits for a socket that may come back; not this long here)
    assert not Path(victim.socket).exists()
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(victim.socket)
    monkeypatch.setattr(sandbox_relay, "CONNECT_WAIT_S", 0.2)
    with pytest.raises(httpx.ProxyError, match="502"):
        request(pool, victim, upstream, f"relay-{tag}")

    # nothing of the run reached the upstream after the kill; the value went nowhere new
    assert received_with(upstream, f"after-{tag}") == []
    assert received_with(upstream, f"relay-{tag}") == []
    assert sum(canary_value in r.raw().decode("latin-1") for r in upstream.received) == 1
    assert canary_value not in pool.audit_log.read_text()

    # one worker_lost line for the run, none for the bystander
    lines = [e for e in pool.audit_for(victim) if e.get("reason") == "worker_lost"]
    assert len(lines) == 1 and lines[0]["decision"] == "deny"
    assert str(lost["pid"]) in lines[0]["error"]
    assert not [e for e in pool.audit_for(bystander) if e.get("reason") == "worker_lost"]

    # the other worker's run never noticed; a new run is served
    assert request(pool, bystander, upstream, f"bystander-{tag}").status_code == 200
    assert _slot(pool, kept["slot"])["pid"] == kept["pid"]
    fresh = pool.register((NAME,))
    r = request(pool, fresh, upstream, f"fresh-{tag}")
    assert r.status_code == 200 and canary_value not in r.text
    assert only_received_with(upstream, f"fresh-{tag}").header("Authorization") == (
        f"Bearer {canary_value}"
    )
    # the cut-off run is gone from the service; its runner's unregister is still answered
    assert pool.ping()["runs"] == 2
    pool.unregister(victim)


def test_runs_placed_while_a_worker_is_down_go_to_the_live_one(pool, upstream, tag):
    first = pool.register((NAME,))
    lost = worker_of(pool, first)
    os.kill(lost["pid"], signal.SIGKILL)
    runs = [pool.register((NAME,)) for _ in range(3)]  # at once: maybe before it is noticed
    for run in runs:
        assert request(pool, run, upstream, f"{run.run_id}-{tag}").status_code == 200
    wait_until(lambda: _slot(pool, lost["slot"])["ready"], "the new worker serving")


def test_a_worker_that_keeps_dying_is_restarted_each_time(pool):
    slot = 0
    seen = []
    for _ in range(3):
        wait_until(lambda: _slot(pool, slot)["ready"], "worker serving")
        pid = _slot(pool, slot)["pid"]
        seen.append(pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: _slot(pool, slot)["pid"] != pid, "a new worker")
    wait_until(lambda: _slot(pool, slot)["ready"], "worker serving")
    assert len(set(seen)) == 3
    assert pool.ping()["ok"] and pool.proc.poll() is None


def _slot(proxy: ProxyHarness, slot: int) -> dict[str, int]:
    [w] = [w for w in proxy.ping()["workers"] if w["slot"] == slot]
    return w
