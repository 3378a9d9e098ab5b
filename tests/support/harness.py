"""The real proxy service in a subprocess, and host-side clients that reach it as a sandbox does.

A host-side client goes through the same relay a sandbox's init runs (sandbox.relay),
listening on a local port and leading to the run's Unix socket.

The service runs one worker (one process) unless told otherwise: ``start_proxy(workers=N)``
(``workers=0``: the service's own default, one per core), or ``COATCHECK_TEST_WORKERS=N`` in
the environment for every proxy a test starts (the security suite against a coordinator and N
workers).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import messages
from core.messages import Registration
from core.pids import stop, wait_or_kill
from core.placeholders import mint
from proxy import control
from proxy.paths import ProxyPaths
from sandbox import relay as sandbox_relay

WORKERS_ENV = "COATCHECK_TEST_WORKERS"


def workers_for_tests() -> int:
    """How many workers a test proxy runs: ``COATCHECK_TEST_WORKERS``, 1 when unset."""
    return int(os.environ.get(WORKERS_ENV) or 1)


def relay(socket_path: str) -> tuple[int, socket.socket]:
    """A TCP listener on 127.0.0.1 relaying to ``socket_path``; returns (port, listener)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(target=_accept_loop, args=(listener, socket_path), daemon=True).start()
    return listener.getsockname()[1], listener


def _accept_loop(listener: socket.socket, socket_path: str) -> None:
    """Each connection relayed as the sandbox's init relays it, until the listener closes."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=sandbox_relay.serve, args=(conn, socket_path), daemon=True).start()


@dataclass
class Run:
    run_id: str
    placeholders: dict[str, str]
    socket: str
    proxy_url: str
    listener: socket.socket

    def close(self) -> None:
        self.listener.close()


@dataclass
class ProxyHarness:
    home: Path
    sockets: Path
    proc: subprocess.Popen[bytes]
    audit_log: Path
    runs: list[Run] = field(default_factory=list)
    stderr_log: Path | None = None  # where its stderr goes, when start_proxy was given one
    _pids: list[int] | None = field(default=None, repr=False)

    def status(self, key: str) -> int:
        """A figure of the service from /proc/<pid>/status, in kB (``VmRSS``, ``VmHWM``, ...),
        summed over its processes (the coordinator and its workers, when it has some)."""
        return sum(proc_status(pid, key) for pid in self.service_pids())

    def open_files(self) -> int:
        """Open file descriptors of the service's processes."""
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in self.service_pids())

    def service_pids(self) -> list[int]:
        """:meth:`pids` as of the first call (samplers call this often: no ping each time)."""
        if self._pids is None:
            self._pids = self.pids()
        return self._pids

    def ping(self) -> dict[str, Any]:
        return control.call(self.paths.control, messages.ping())

    def worker_pids(self) -> list[int]:
        """The workers' pids (none for a one-process service)."""
        return [int(w["pid"]) for w in self.ping().get("workers", [])]

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.worker_pids()]

    def trust_dirs(self) -> list[Path]:
        """Where the service keeps its upstream-trust bundles: one directory per worker."""
        workers = sorted((self.sockets / "workers").glob("*"))
        return workers or [self.sockets]

    @property
    def paths(self) -> ProxyPaths:
        return ProxyPaths.for_home(self.home, sockets=self.sockets)

    @property
    def ca_cert(self) -> Path:
        return self.paths.ca_cert

    def register(
        self,
        secrets: tuple[str, ...] = (),
        *,
        run_id: str | None = None,
        placeholders: dict[str, str] | None = None,
        **kw: Any,
    ) -> Run:
        run_id = run_id or f"r-test{len(self.runs):04d}{os.urandom(3).hex()}"
        phs = placeholders or {name: mint() for name in secrets}
        if isinstance(kw.get("resolve"), dict):  # {host: addr}, as HOST:ADDR items
            kw["resolve"] = [f"{host}:{addr}" for host, addr in kw["resolve"].items()]
        reg = Registration.from_json({"run_id": run_id, "secrets": phs, **kw})
        reply = control.call(self.paths.control, reg.to_json())
        port, listener = relay(reply["socket"])
        run = Run(
            run_id,
            reply.get("placeholders", phs),
            reply["socket"],
            f"http://127.0.0.1:{port}",
            listener,
        )
        self.runs.append(run)
        return run

    def unregister(self, run: Run) -> None:
        control.call(self.paths.control, messages.unregister(run.run_id))

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]

    def audit_for(self, run: Run) -> list[dict[str, Any]]:
        return [e for e in self.audit() if e.get("run_id") == run.run_id]

    def close(self) -> None:
        for run in self.runs:
            run.close()
        stop(self.proc, timeout=10)
        shutil.rmtree(self.sockets, ignore_errors=True)


def proc_status(pid: int, key: str) -> int:
    """A figure of process ``pid`` from /proc/<pid>/status, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise KeyError(key)


def _limit_open_files(n: int) -> Any:
    """A preexec_fn: the child may open at most ``n`` files (soft and hard limit)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def start_proxy(
    home: Path,
    sockets: Path,
    *,
    upstream_ca: Path | None = None,
    extra: tuple[str, ...] = (),
    stderr: Path | None = None,
    open_files: int | None = None,
    workers: int | None = None,
) -> ProxyHarness:
    audit_log = home / "audit-test.jsonl"
    argv = [
        sys.executable,
        "-I",
        "-m",
        "runner.proxyd",
        "--home",
        str(home),
        "--sockets",
        str(sockets),
        "--audit-log",
        str(audit_log),
        *([] if workers == 0 else [f"--workers={workers or workers_for_tests()}"]),
        *extra,
    ]
    if upstream_ca is not None:
        argv.append(f"--upstream-ca={upstream_ca}")
    err = open(stderr, "ab") if stderr is not None else None  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            env=dict(os.environ),
            preexec_fn=None if open_files is None else _limit_open_files(open_files),
        )
    finally:
        if err is not None:
            err.close()  # the child has its own copy
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        wait_or_kill(proc, timeout=30)
        raise RuntimeError("proxy service exited before it was ready")
    deadline = time.monotonic() + 10
    paths = ProxyPaths.for_home(home, sockets=sockets)
    while control.ping(paths.control) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("proxy service not answering")
        time.sleep(0.05)
    return ProxyHarness(home, sockets, proc, audit_log, stderr_log=stderr)
