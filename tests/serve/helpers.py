"""Host-side helpers for the ``coatcheck serve`` end-to-end tests: the service as a real
subprocess (its JSON log in a file, so a full pipe never blocks it), readiness on
``GET /v1/health``, deployments from job-file text, and the run history through the CLI.

Waiting on an external process is a loop with a deadline on what it makes observable (its HTTP
API, the history, Docker), never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.sandbox.helpers import COATCHECK, RUN_LABEL, Home, coatcheck

POLL_S = 0.25


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for[T](check: Callable[[], T | None], what: str, timeout: float) -> T:
    """The first true value ``check()`` returns, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(POLL_S)


@dataclass
class Service:
    """One ``coatcheck serve`` process of ``home``, listening on 127.0.0.1:``port``."""

    home: Home
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str, body: bytes = b"", **headers: str) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers=headers, timeout=30,
                          trust_env=False)  # fmt: skip

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"coatcheck serve exited {self.proc.returncode}:\n"
                                 f"{self.log_text()}")  # fmt: skip
        try:
            r = httpx.get(self.url + "/v1/health", timeout=2, trust_env=False)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def wait_ready(self, timeout: float = 90) -> Service:
        wait_for(self.healthy, f"coatcheck serve on port {self.port} to answer", timeout)
        return self

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM; the exit code (the process is killed if it outlives ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"coatcheck serve ignored SIGTERM for {timeout}s") from None

    def close(self) -> None:
        """End the service (by its own handle) in teardown, whatever state it is in."""
        if self.proc.poll() is None:
            with contextlib.suppress(AssertionError):
                self.terminate(timeout=45)


def start_serve(home: Home, log_dir: Path, port: int | None = None) -> Service:
    port = port or free_port()
    log = log_dir / f"serve-{port}-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own CLI, by sys.executable
            (*COATCHECK, "serve", "--listen", f"127.0.0.1:{port}"), env=home.env,
            stdin=subprocess.DEVNULL, stdout=err, stderr=err,
        )  # fmt: skip
    return Service(home, port, proc, log)


def ok(home: Home, *args: str) -> str:
    """Run a coatcheck command that must succeed; its stdout."""
    r = coatcheck(home, *args, timeout=60)
    assert r.code == 0, f"coatcheck {' '.join(args)} failed: {r}"
    return r.stdout


def deploy(home: Home, directory: Path, name: str, text: str) -> Path:
    """Write ``name``.toml (``name = ...`` first) and ``coatcheck deploy`` it."""
    path = directory / f"{name}.toml"
    path.write_text(f'name = "{name}"\n{text}')
    out = ok(home, "deploy", str(path))
    assert f"deployment {name} created" in out, out
    return path


def runs(home: Home, deployment: str | None = None) -> list[dict[str, Any]]:
    args = ["runs", "list", "--json", "--limit", "200"]
    if deployment is not None:
        args += ["--deployment", deployment]
    return list(json.loads(ok(home, *args)))


def run_show(home: Home, run_id: str) -> dict[str, Any]:
    return dict(json.loads(ok(home, "runs", "show", run_id, "--json")))


def deployment(home: Home, name: str) -> dict[str, Any]:
    return dict(json.loads(ok(home, "deployments", "show", name, "--json")))


def finished(home: Home, run_id: str, timeout: float = 90) -> dict[str, Any]:
    """The run's ``runs show`` once it has ended."""

    def ended() -> dict[str, Any] | None:
        shown = run_show(home, run_id)
        return shown if shown["status"] not in ("pending", "running") else None

    return wait_for(ended, f"run {run_id} to end", timeout)


def output_of(home: Home, run_id: str) -> str:
    return ok(home, "runs", "logs", run_id)


def containers_of_run(client: Any, run_id: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"},
                                       ignore_removed=True))  # fmt: skip


def running_container(client: Any, run_id: str, timeout: float = 90) -> Any:
    def running() -> Any:
        return next((c for c in containers_of_run(client, run_id) if c.status == "running"), None)

    return wait_for(running, f"the sandbox of run {run_id} to run", timeout)


def remove_containers(client: Any, run_id: str) -> None:
    for c in containers_of_run(client, run_id):
        with contextlib.suppress(Exception):
            c.remove(force=True)
