"""A stopped ``coatcheck run`` leaves nothing behind, and a shared proxy forgets a run's CA.

Attacks/bugs: SIGTERM or SIGHUP (its terminal closing) to ``coatcheck run`` left the container
running until the next run reaped it; a run's ``--upstream-ca`` stayed trusted, and its trust
bundle stayed on disk, after the run had left the shared proxy.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.sandbox.helpers import (
    COATCHECK,
    Home,
    docker_client,
    remove_sandboxes,
    sandboxes_of,
    stop,
)
from tests.support.harness import ProxyHarness


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with docker_client() as c:
        yield c


def wait_until_running(client: Any, proc: subprocess.Popen[bytes]) -> Any:
    """The run's container, once its job has printed that it started (an event, not a delay)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"started", (line, proc.poll())
    (container,) = sandboxes_of(client, proc.pid)
    container.reload()
    assert container.status == "running"
    return container


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_a_stopped_run_stops_and_removes_its_sandbox(client: Any, tmp_path: Path, sig: int):
    home = Home(tmp_path)
    proc = subprocess.Popen(
        (*COATCHECK, "run", "--", "sh", "-c", "echo started; exec sleep 300"),
        env=home.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until_running(client, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + sig, err
        assert b"stopped by" in err
        # Gone when the runner has exited, not at the next run's reaping.
        assert sandboxes_of(client, proc.pid) == []
    finally:
        stop(proc)
        remove_sandboxes(client, proc.pid)


def bundles(proxy: ProxyHarness) -> dict[Path, str]:
    return {p: p.read_text() for d in proxy.trust_dirs() for p in d.glob("upstream-ca-*.pem")}


def test_a_runs_upstream_ca_is_forgotten_when_the_run_leaves(proxy: ProxyHarness):
    before = bundles(proxy)
    own_ca = trustme.CA().cert_pem.bytes().decode()
    run = proxy.register((), upstream_ca_pem=[own_ca])
    during = bundles(proxy)
    assert any(own_ca in text for text in during.values())
    # one bundle in use (per worker), the previous one removed
    assert len(during) == len(before) == len(proxy.trust_dirs())
    proxy.unregister(run)
    after = bundles(proxy)
    assert not any(own_ca in text for text in after.values())
    assert after == before  # back to the service's own CAs
