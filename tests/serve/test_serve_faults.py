"""``coatcheck serve`` when it is cut short, with the real engine: ``kill -9`` during a run (the
run dies with the service, the next start records it as interrupted), SIGTERM (running runs are
stopped and recorded as cancelled), and a second service starting beside a busy first one.

Each test starts its own services on one module home; every service is ended in teardown by its
own handle, and every sandbox of a run made here is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy import control as proxy_control
from proxy.paths import ProxyPaths
from tests.sandbox.helpers import Home, kill_if_alive
from tests.serve.helpers import (
    Service,
    containers_of_run,
    deploy,
    ok,
    remove_containers,
    run_show,
    running_container,
    start_serve,
    wait_for,
)

pytestmark = pytest.mark.docker

SLEEPER = 'command = ["sleep", "300"]\n'  # no [schedule]: it runs when asked


class Faults:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = Home(root)
        self.services: list[Service] = []
        self.run_ids: list[str] = []

    def serve(self) -> Service:
        service = start_serve(self.home, self.root)
        self.services.append(service)
        return service.wait_ready()

    def run_now(self, name: str) -> str:
        out = ok(self.home, "deployments", "run", name)
        found = re.search(r"\br-[0-9a-f]{16}\b", out)
        assert found, out
        self.run_ids.append(found.group(0))
        return found.group(0)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory, docker_api: Any) -> Iterator[Faults]:
    f = Faults(tmp_path_factory.mktemp("serve-faults"))
    try:
        yield f
    finally:
        for service in reversed(f.services):
            service.close()
        for run_id in f.run_ids:
            remove_containers(docker_api, run_id)
        # a proxy a killed service left behind (it runs in its own session)
        ping = proxy_control.ping(ProxyPaths.for_home(f.home.path).control)
        if ping is not None and isinstance(ping.get("pid"), int):
            kill_if_alive(ping["pid"])


def gone(client: Any, run_id: str) -> bool:
    return not containers_of_run(client, run_id)


def test_kill_9_during_a_run_then_restart(faults: Faults, docker_api: Any) -> None:
    home = faults.home
    first = faults.serve()
    deploy(home, faults.root, "sleeper-kill", SLEEPER)
    run_id = faults.run_now("sleeper-kill")
    running_container(docker_api, run_id)
    assert run_show(home, run_id)["status"] == "running"

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)

    wait_for(lambda: gone(docker_api, run_id), "the orphaned run to remove its sandbox", 45)
    second = faults.serve()
    shown = run_show(home, run_id)
    assert shown["status"] == "error", shown
    assert "interrupted" in (shown["reason"] or ""), shown
    assert gone(docker_api, run_id), "a sandbox of the killed run came back"
    assert second.terminate() == 0, second.log_text()


def test_sigterm_cancels_running_runs(faults: Faults, docker_api: Any) -> None:
    home = faults.home
    service = faults.serve()
    deploy(home, faults.root, "sleeper-term", SLEEPER)
    run_id = faults.run_now("sleeper-term")
    running_container(docker_api, run_id)

    started = time.monotonic()
    code = service.terminate(timeout=60)
    took = time.monotonic() - started

    assert code == 0, service.log_text()
    assert took < 45, f"SIGTERM took {took:.0f}s to stop the service"
    shown = run_show(home, run_id)
    assert shown["status"] == "cancelled", shown
    assert shown["reason"] == "service stopping", shown
    assert gone(docker_api, run_id), "the sandbox outlived the stopped service"
    assert '"event": "serve_stopped"' in service.log_text()


def test_a_second_service_leaves_the_first_services_running_run_alone(
    faults: Faults, docker_api: Any
) -> None:
    """Starting a second service on a busy home must not record the first one's runs as
    interrupted: they are still running, under a live service."""
    home = faults.home
    first = faults.serve()
    deploy(home, faults.root, "sleeper-busy", SLEEPER)
    run_id = faults.run_now("sleeper-busy")
    container = running_container(docker_api, run_id)

    faults.serve()

    container.reload()
    assert container.status == "running", "the second service stopped the first one's run"
    shown = run_show(home, run_id)
    assert shown["status"] == "running", f"a live run was recorded as {shown['status']}: {shown}"
    with contextlib.suppress(AssertionError):
        first.terminate()


def test_a_killed_services_proxy_does_not_outlive_the_next_service(tmp_path: Path) -> None:
    """After ``kill -9`` the proxy the service started (in its own session) is left running;
    the next service adopts it as "shared" and so never stops it: it outlives everything."""
    home = Home(tmp_path)
    where = ProxyPaths.for_home(home.path).control
    services: list[Service] = []
    leaked: list[int] = []
    try:
        services.append(start_serve(home, tmp_path).wait_ready())
        first = services[0]
        assert '"proxy": "own"' in first.log_text(), first.log_text()
        ping = proxy_control.ping(where)
        assert ping is not None, "the service's proxy does not answer"
        leaked.append(int(ping["pid"]))
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)

        services.append(start_serve(home, tmp_path).wait_ready())
        assert services[1].terminate() == 0, services[1].log_text()

        left = proxy_control.ping(where)
        assert left is None, f"a proxy (pid {left and left['pid']}) outlived both services"
    finally:
        for service in services:
            service.close()
        for pid in leaked:
            kill_if_alive(pid)
