"""The real proxy service in a subprocess, and host-side clients that reach it as a sandbox does.

A host-side client goes through the same relay a sandbox's init runs (sandbox.init),
listening on a local port and leading to the run's Unix socket.
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
from core.pids import wait_or_kill
from core.placeholders import mint
from proxy import control
from proxy.paths import ProxyPaths
from sandbox import init as sandbox_init


def relay(socket_path: str) -> tuple[int, socket.socket]:
    """A TCP listener on 127.0.0.1 relaying to ``socket_path``; returns (port, listener)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    threading.Thread(
        target=sandbox_init._accept_loop, args=(listener, socket_path), daemon=True
    ).start()
    return listener.getsockname()[1], listener


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

    def status(self, key: str) -> int:
        """A figure of the service process from /proc/<pid>/status, in kB (``VmRSS``,
        ``VmHWM``, ...)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return int(value.split()[0])
        raise KeyError(key)

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
        self.proc.terminate()
        wait_or_kill(self.proc, timeout=10)
        shutil.rmtree(self.sockets, ignore_errors=True)


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
        raise RuntimeError("proxy service exited before it was ready")
    deadline = time.monotonic() + 10
    paths = ProxyPaths.for_home(home, sockets=sockets)
    while control.ping(paths.control) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("proxy service not answering")
        time.sleep(0.05)
    return ProxyHarness(home, sockets, proc, audit_log, stderr_log=stderr)
