"""The benchmark's bench: a trustme CA, two local TLS upstreams for the test name (the /echo one
and the streaming one), a plain mitmdump, and coatcheck proxy services (one worker; the default
number of workers) with runs registered on them. Only loopback, only the ``.test`` name.

What is not built yet in this tree (workers, opaque hosts) is detected, not assumed: the lab
says so and the parts that need it report "n/a (not built)".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from core.messages import Registration
from core.placeholders import mint
from core.runids import new_run_id
from proxy import control
from tests.bench.client import Target, tcp, unix, upstream
from tests.bench.common import (
    HERE,
    NAME,
    SECRET,
    VENV_BIN,
    cmdline,
    free_port,
    stop,
    tree,
    wait_for,
)
from tests.support.harness import ProxyHarness, start_proxy
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault


def workers_built() -> bool:
    """Does ``coatcheck proxy`` take ``--workers``?"""
    out = subprocess.run(
        [str(VENV_BIN / "coatcheck"), "proxy", "--help"], capture_output=True, timeout=60
    )
    return b"--workers" in out.stdout


def default_workers() -> int:
    """The number of workers ``coatcheck proxy`` starts by default."""
    try:
        from proxy.workers import default_count
    except ImportError:
        return len(os.sched_getaffinity(0))
    return default_count()


def opaque_built() -> bool:
    from core.messages import Registration

    return "allow_opaque" in getattr(Registration, "__dataclass_fields__", {})


def service_pids(root: int) -> tuple[list[int], list[int]]:
    """A service's own processes (coordinator, workers) and its zygote's, apart."""
    own: list[int] = []
    zygote: list[int] = []
    for pid in tree(root):
        (zygote if "runner.zygote" in cmdline(pid) else own).append(pid)
    own_set = set(own)
    # a zygote's children (runs being launched) are the zygote's, not the proxy's
    for pid in list(zygote):
        for child in tree(pid):
            if child in own_set:
                own.remove(child)
                own_set.discard(child)
                zygote.append(child)
    return own, sorted(set(zygote))


@dataclass
class Run:
    run_id: str
    placeholders: dict[str, str]
    socket: str


def register(harness: ProxyHarness, secrets: dict[str, str], **fields: object) -> Run:
    """A run registered over the control socket, as ``coatcheck run`` does (no relay: the
    bench's clients connect to the run's socket themselves)."""
    run_id = new_run_id()
    reg = Registration.from_json({"run_id": run_id, "secrets": secrets, **fields})
    reply = control.call(harness.paths.control, reg.to_json() | fields)
    return Run(run_id, dict(reply.get("placeholders", secrets)), str(reply["socket"]))


@dataclass
class Service:
    label: str
    harness: ProxyHarness
    runs: list[Run] = field(default_factory=list)
    opaque: Run | None = None

    @property
    def pid(self) -> int:
        return self.harness.proc.pid

    def targets(self, real: str) -> list[Target]:
        """One target per run: the run's socket, its placeholder, the value it stands for."""
        return [
            Target(
                self.label,
                self.pid,
                unix(r.socket),
                self.harness.ca_cert,
                True,
                f"Bearer {r.placeholders[SECRET]}",
                f"Bearer {real}",
            )
            for r in self.runs
        ]

    def opaque_target(self, ca_file: Path) -> Target | None:
        if self.opaque is None:
            return None
        return Target(
            f"{self.label}-opaque",
            self.pid,
            unix(self.opaque.socket),
            ca_file,
            True,
            "Bearer none",
            "Bearer none",
        )


@dataclass
class Lab:
    tmp: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    real: str
    echo_port: int = 0
    echo_pid: int = 0
    stream_port: int = 0
    mitm_pid: int = 0
    mitm_port: int = 0
    mitm_ca: Path = Path()
    services: dict[str, Service] = field(default_factory=dict)
    has_workers: bool = False
    has_opaque: bool = False
    errors: list[str] = field(default_factory=list)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def main(self) -> Service:
        """The service for SSE and bulk transfers: default workers when built."""
        return self.services.get("coatcheck") or self.services["coatcheck-w1"]

    def direct(self, auth: str) -> Target:
        return Target("direct", None, upstream(), self.ca_file, False, auth, auth)

    def mitmdump(self, auth: str) -> Target:
        return Target(
            "mitmdump", self.mitm_pid, tcp(self.mitm_port), self.mitm_ca, True, auth, auth
        )

    def new_service(
        self, label: str, workers: int | None, runs: int, *, opaque: bool = True
    ) -> Service:
        """A service with ``runs`` runs (and an opaque one); ``workers`` None: the default."""
        home = self.tmp / f"home-{label}"
        home.mkdir()
        key = Path(os.environ["COATCHECK_VAULT_KEY_FILE"])
        Vault.open(home, keystore=FileKeystore(key)).set(SECRET, SecretValue(self.real), [NAME])
        extra = [f"--resolve={NAME}:127.0.0.1"]
        if self.has_workers:  # explicit: the test harness would otherwise pick 1
            extra.append(f"--workers={workers or default_workers()}")
        sockets = Path(f"/tmp/ccb-{os.getpid()}-{label}")
        log = self.tmp / f"service-{label}.log"
        try:
            harness = start_proxy(
                home, sockets, upstream_ca=self.ca_file, extra=tuple(extra), stderr=log
            )
        except RuntimeError as exc:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise RuntimeError(f"service {label}: {exc}: {' '.join(tail)[-300:]}") from None
        svc = self.services[label] = Service(label, harness)
        svc.runs = [register(harness, {SECRET: mint()}) for _ in range(runs)]
        if opaque and self.has_opaque:
            svc.opaque = register(harness, {}, allow_opaque=[NAME])
        return svc

    def drop_service(self, label: str) -> None:
        svc = self.services.pop(label)
        svc.harness.close()


def _upstream(script: str, cert: Path, key: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), str(cert), str(key)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline() or 0)
    if not port:
        raise RuntimeError(f"{script} did not start")
    return proc, port


@contextlib.contextmanager
def lab(tmp: Path, *, services: bool = True) -> Iterator[Lab]:
    ca = trustme.CA()
    ca_file = tmp / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(NAME)
    cert_file, key_file = tmp / "upstream-cert.pem", tmp / "upstream-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    os.environ["COATCHECK_VAULT_KEY_FILE"] = str(tmp / "vault.key")
    os.environ.pop("COATCHECK_TEST_WORKERS", None)  # the lab picks each service's workers
    the = Lab(tmp, ca_file, cert_file, key_file, real="ghp_" + os.urandom(18).hex())
    try:
        proc, the.echo_port = _upstream("upstream_fast.py", cert_file, key_file)
        the._procs.append(proc)
        the.echo_pid = proc.pid
        proc, the.stream_port = _upstream("upstream_stream.py", cert_file, key_file)
        the._procs.append(proc)
        _start_mitmdump(the)
        if services:
            the.has_workers, the.has_opaque = workers_built(), opaque_built()
            the.new_service("coatcheck-w1", 1, 4)
            if the.has_workers:
                try:
                    the.new_service("coatcheck", None, 4)
                except RuntimeError as exc:  # the rest is still worth measuring
                    the.errors.append(str(exc))
        yield the
    finally:
        os.environ.pop("COATCHECK_VAULT_KEY_FILE", None)
        for label in list(the.services):
            with contextlib.suppress(Exception):
                the.drop_service(label)
        for p in the._procs:
            if p.stdin:
                p.stdin.close()
            stop(p)
            if p.stdout:
                p.stdout.close()
        for path in Path("/tmp").glob(f"ccb-{os.getpid()}-*"):
            shutil.rmtree(path, ignore_errors=True)


def _start_mitmdump(the: Lab) -> None:
    """Plain mitmdump, streaming bodies over 1 MiB (as coatcheck streams them; buffering
    200 MiB would measure something else), dialing 127.0.0.1 for the test name."""
    port, conf = free_port(), the.tmp / "mitmconf"
    mitm = subprocess.Popen(
        [str(VENV_BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
         "--listen-port", str(port), "--set", f"confdir={conf}",
         "--set", f"ssl_verify_upstream_trusted_ca={the.ca_file}",
         "--set", "connection_strategy=lazy", "--set", "stream_large_bodies=1m",
         "-s", str(HERE / "mitm_resolve.py")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    the._procs.append(mitm)

    def ready() -> bool:
        if mitm.poll() is not None:
            raise RuntimeError("mitmdump exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return (conf / "mitmproxy-ca-cert.pem").exists()

    wait_for(ready, "mitmdump")
    the.mitm_pid, the.mitm_port, the.mitm_ca = mitm.pid, port, conf / "mitmproxy-ca-cert.pem"
