"""Host-side helpers for the real-Docker tests: the coatcheck CLI in a subprocess, an isolated
state dir, TCP/UDP canaries that record every connection, and labelled Docker resources.

Every Docker resource a test creates carries ``TEST_LABEL`` and is removed in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from tests.conftest import INHERITED
from tests.sandbox import probe

COATCHECK = (sys.executable, "-m", "runner.cli")
PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text()
PROBE_MARKER = "COATCHECK-PROBE "
TEST_LABEL = "org.coatcheck.test"
RUN_LABEL = "org.coatcheck.run"
OWNER_LABEL = "org.coatcheck.owner_pid"
IMAGE = "coatcheck/sandbox:latest"
# A probe given {"release": RELEASE_FILE} stays until the host creates it (see inspected_run).
RELEASE_FILE = "/tmp/.coatcheck-test-release"  # noqa: S108 - inside the sandbox's own tmpfs


@dataclass(frozen=True)
class Home:
    """A private COATCHECK_HOME and vault key file, and the environment that points at them."""

    root: Path

    @property
    def path(self) -> Path:
        return self.root / "home"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        env["COATCHECK_HOME"] = str(self.path)
        env["COATCHECK_VAULT_KEY_FILE"] = str(self.root / "vault.key")
        return env

    @property
    def audit_log(self) -> Path:
        return self.path / "proxy" / "audit.jsonl"

    @property
    def ca_dir(self) -> Path:
        return self.path / "proxy" / "ca"


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def probe(self) -> dict[str, Any]:
        """The JSON a probe printed; fails with the run's whole output when there is none."""
        for line in self.stdout.splitlines():
            if line.startswith(PROBE_MARKER):
                return dict(json.loads(line[len(PROBE_MARKER) :]))
        raise AssertionError(f"no probe output: {self}")

    def log_line(self) -> dict[str, Any]:
        """The run's ``--log-json`` line on stderr."""
        for line in reversed(self.stderr.splitlines()):
            if line.startswith("{") and '"event": "run"' in line:
                return dict(json.loads(line))
        raise AssertionError(f"no run log line on stderr: {self.stderr!r}")

    def __str__(self) -> str:
        return (
            f"exit {self.code} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}\n"
            f"--- stderr\n{self.stderr}"
        )


def coatcheck(home: Home, *args: str, input: str | None = None, timeout: float = 180) -> Result:
    """Run the real ``coatcheck`` command line to completion."""
    argv = (*COATCHECK, *args)
    started = time.monotonic()
    p = subprocess.run(argv, env=home.env, input=(input or "").encode(), capture_output=True,
                       timeout=timeout)  # fmt: skip
    return Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"), time.monotonic() - started)  # fmt: skip


def start_coatcheck(home: Home, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen((*COATCHECK, *args), env=home.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def finish(proc: subprocess.Popen[bytes], started: float, timeout: float = 180) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(tuple(map(str, proc.args)), proc.returncode,  # type: ignore[arg-type]
                  out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
                  time.monotonic() - started)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this test started (by its own handle) and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=10)  # may time out if an orphaned child still holds a pipe
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait(timeout=10)


def vault_set(home: Home, name: str, value: str, domains: str) -> None:
    r = coatcheck(home, "vault", "set", name, "--domains", domains, input=value)
    assert r.code == 0, str(r)


def probe_command(mode: str, arg: dict[str, Any]) -> tuple[str, ...]:
    return ("python3", "-c", PROBE_SOURCE, mode, json.dumps(arg))


def key_fingerprints(directory: Path) -> set[str]:
    """Fingerprints (computed as the probe does) of every PEM private key under ``directory``."""
    prints = set()
    for path in directory.rglob("*"):
        if path.is_file():
            for m in probe.PEM_KEY.finditer(path.read_bytes()):
                prints.add(probe.fingerprint(m.group(2)))
    return prints


# -- canaries ---------------------------------------------------------------------------------
@dataclass
class Canary:
    """A listener on every host address (IPv4 and IPv6, ``::`` dual-stack) on a random port.

    ``hits`` records the peer of every TCP connection or UDP datagram it ever sees.
    """

    kind: int = socket.SOCK_STREAM
    hits: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0
    _sock: socket.socket | None = None

    def start(self) -> Canary:
        s = socket.socket(socket.AF_INET6, self.kind)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        if self.kind == socket.SOCK_STREAM:
            s.listen(16)
        self._sock, self.port = s, s.getsockname()[1]
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        assert self._sock is not None
        while True:
            try:
                if self.kind == socket.SOCK_STREAM:
                    conn, peer = self._sock.accept()
                    conn.close()
                else:
                    _, peer = self._sock.recvfrom(4096)
            except OSError:
                return
            if not peer:  # a UDP socket that was shut down wakes up with no sender
                return
            self.hits.append((peer[0], peer[1]))

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()


def self_test(canary: Canary, timeout: float = 5.0) -> None:
    """Prove a canary records: poke it from the host, wait for the hit, then forget it."""
    if canary.kind == socket.SOCK_STREAM:
        socket.create_connection(("127.0.0.1", canary.port), timeout=5).close()
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"self-test", ("127.0.0.1", canary.port))
    deadline = time.monotonic() + timeout
    while not canary.hits:
        assert time.monotonic() < deadline, "the canary did not record its self-test"
        time.sleep(0.02)
    canary.hits.clear()


def host_addresses(gateway: str) -> list[str]:
    """127.0.0.1, the docker0 gateway and every address ``hostname -I`` reports."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout
    addresses = ["127.0.0.1", gateway, *out.split()]
    return list(dict.fromkeys(addresses))


# -- Docker -----------------------------------------------------------------------------------
@contextlib.contextmanager
def docker_client() -> Iterator[Any]:
    client = docker.from_env(timeout=120)
    try:
        yield client
    finally:
        client.close()


def bridge_gateway(client: Any, container: Any) -> str:
    """The docker0 gateway: from ``docker network inspect bridge``, or (older engines list no
    gateway there) from a container attached to that network."""
    for config in client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
        if "." in config.get("Gateway", ""):
            return str(config["Gateway"])
    container.reload()
    return str(container.attrs["NetworkSettings"]["Networks"]["bridge"]["Gateway"])


def sandboxes_of(client: Any, owner_pid: int) -> list[Any]:
    """Containers that ``coatcheck run`` process ``owner_pid`` created (by its labels)."""
    return list(
        client.containers.list(
            all=True, filters={"label": f"{OWNER_LABEL}={owner_pid}"}, ignore_removed=True
        )
    )


def wait_for_sandbox(client: Any, proc: subprocess.Popen[bytes], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = sandboxes_of(client, proc.pid)
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"coatcheck run exited ({proc.returncode}) before its sandbox "
                                 f"was seen: {proc.communicate()}")  # fmt: skip
        assert time.monotonic() < deadline, "no sandbox container appeared"
        time.sleep(0.05)


def remove_sandboxes(client: Any, owner_pid: int) -> None:
    for c in sandboxes_of(client, owner_pid):
        with contextlib.suppress(docker.errors.APIError):
            c.remove(force=True)


def inspected_run(home: Home, client: Any, *args: str) -> tuple[dict[str, Any], Result]:
    """Run ``coatcheck run ARGS``, ``docker inspect`` its sandbox while it runs; return
    ``(inspect JSON, result)``. A probe that waits for ``RELEASE_FILE`` is released once the
    inspection is done. The run's container is removed in any case."""
    started = time.monotonic()
    proc = start_coatcheck(home, "run", *args)
    try:
        container = wait_for_sandbox(client, proc)
        inspect = client.api.inspect_container(container.id)
        release(container, proc)
        return dict(inspect), finish(proc, started)
    finally:
        stop(proc)
        remove_sandboxes(client, proc.pid)


def release(container: Any, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Create ``RELEASE_FILE`` in ``container`` once it runs (``docker exec`` needs a running
    container); nothing to do when its run has already ended."""
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        if container.status == "running":
            code, out = container.exec_run(["touch", RELEASE_FILE])
            assert code == 0, out
            return
        if container.status in ("exited", "dead") or proc.poll() is not None:
            return  # the run is over: its output says why
        assert time.monotonic() < deadline, f"the sandbox never ran: {container.status}"
        time.sleep(0.05)


def pid_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (``Z`` for a zombie), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(entry.name), cmdline))
    return out


def kill_if_alive(pid: int) -> None:
    if pid_state(pid) not in (None, "Z"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
