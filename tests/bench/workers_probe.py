"""Runs spread over workers, measured: keep-alive throughput of 4 concurrent runs with one worker
against several, and the shared service's memory with 20 runs. A measurement, not a test.

    .venv/bin/python tests/bench/workers_probe.py [--seconds 4] [--rounds 5] [--workers 2]

Every run gets one keep-alive HTTPS client in a process of its own (so clients don't share a
GIL), connected to the run's Unix socket as the in-sandbox relay would be, sending
``Authorization: Bearer <placeholder>`` to ``/echo``: injected on the way out, scrubbed on the
way back. The services take turns in windows of equal length, interleaved over rounds (a busy
neighbour hits both alike); the report gives medians, the ratio of the medians, and the proxy's
CPU time per request (its processes, from /proc), which a loaded machine moves much less.

:func:`measure_keepalive` is the part the benchmark imports.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.client import Client, unix  # noqa: E402
from tests.bench.common import (  # noqa: E402
    HERE,
    NAME,
    SECRET,
    cpu_seconds,
    memory_kib,
    say,
    stop,
    tree,
    tree_cpu_seconds,
)
from tests.support.harness import ProxyHarness, start_proxy  # noqa: E402

MAX_REQUESTS = 1_000_000


@dataclass(frozen=True)
class Lane:
    """One run's client: the run's socket, the Authorization it sends, and the sha256 of the
    Authorization the upstream must get (the real value's)."""

    socket: str
    authorization: str
    expect_sha256: str


@dataclass(frozen=True)
class Throughput:
    rps: float  # all lanes together
    requests: int
    proxy_cpu_ms: float | None  # the proxy's CPU time per request (None without its pid)
    client_cpu_ms: float  # the client processes' (their whole life: TLS set-up included)
    upstream_cpu_ms: float | None  # the upstream's (None without its pid)


def _drive(lane: Lane, port: int, cafile: str, warmup: int, seconds: float, gate: Barrier,
           out: multiprocessing.SimpleQueue[tuple[int, float, str]]) -> None:  # fmt: skip
    """A lane's client process: check one request, warm up, wait for the others, measure."""
    try:
        c = Client(unix(lane.socket)(port), port=port, cafile=Path(cafile), tunnel=True)
        req = c.request_bytes("GET", "/echo", {"Authorization": lane.authorization})
        status, headers, body = c.roundtrip(req)
        if status != 200 or headers.get(b"x-auth-sha256") != lane.expect_sha256.encode():
            raise RuntimeError(f"status {status}: the upstream did not get the real value")
        if lane.authorization.encode() not in body:
            raise RuntimeError("the echo was not scrubbed back to the placeholder")
        for _ in range(warmup):
            c.roundtrip(req)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        gate.abort()
        out.put((0, 0.0, f"{type(exc).__name__}: {exc}"))
        return
    gate.wait()
    clock, n = time.monotonic, 0
    start = clock()
    end = start + seconds
    try:
        while n < MAX_REQUESTS and clock() < end:
            if c.roundtrip(req)[0] != 200:
                raise RuntimeError("non-200")
            n += 1
        out.put((n, clock() - start, ""))
    except Exception as exc:  # noqa: BLE001
        out.put((n, clock() - start, f"{type(exc).__name__}: {exc}"))
    finally:
        c.close()


def measure_keepalive(
    lanes: Sequence[Lane],
    seconds: float,
    *,
    port: int,
    cafile: Path,
    proxy_pid: int | None = None,
    upstream_pid: int | None = None,
    warmup: int = 20,
) -> Throughput:
    """Aggregate keep-alive requests/s of one client process per lane, all at once, for
    ``seconds``; the CPU time per request of the process tree at ``proxy_pid``, of the clients
    and of ``upstream_pid`` with it (where the machine's cores went)."""
    import resource

    def children_cpu() -> float:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    ctx = multiprocessing.get_context("spawn")
    gate = ctx.Barrier(len(lanes) + 1)
    out: multiprocessing.SimpleQueue[tuple[int, float, str]] = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_drive, args=(lane, port, str(cafile), warmup, seconds, gate, out))
        for lane in lanes
    ]
    kids0 = children_cpu()
    for p in procs:
        p.start()
    try:
        gate.wait(timeout=120)
        cpu0, up0 = tree_cpu_seconds(proxy_pid), cpu_seconds(upstream_pid)
        got = [out.get() for _ in procs]
        cpu = tree_cpu_seconds(proxy_pid) - cpu0
        up_cpu = cpu_seconds(upstream_pid) - up0
    except Exception:
        errors = [e for _n, _t, e in (out.get() for _ in range(len(procs))) if e]
        raise RuntimeError(f"a client failed: {errors[:1] or 'no answer'}") from None
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    errors = [e for _n, _t, e in got if e]
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]}")
    total = sum(n for n, _t, _e in got)
    rps = sum(n / t for n, t, _e in got if t > 0)
    ms = 1000 / max(1, total)
    return Throughput(
        rps,
        total,
        cpu * ms if proxy_pid is not None else None,
        (children_cpu() - kids0) * ms,
        up_cpu * ms if upstream_pid is not None else None,
    )


# -- the probe ------------------------------------------------------------------------------
def _service_memory(root: int) -> tuple[list[tuple[int, str, int, int]], int, int]:
    """Per process of the service at ``root`` (zygote apart): (pid, role, RSS KiB, PSS KiB);
    and the zygote's RSS and PSS."""
    rows, z_rss, z_pss = [], 0, 0
    for pid in tree(root):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        rss, pss = memory_kib(pid)
        if b"runner.zygote" in cmd:
            z_rss, z_pss = z_rss + rss, z_pss + pss
            continue
        role = "worker" if b"--worker-dir" in cmd else "coordinator" if pid == root else "other"
        rows.append((pid, role, rss, pss))
    return rows, z_rss, z_pss


@dataclass
class Setup:
    tmp: Path
    ca_file: Path
    real: str
    port: int  # the upstream's
    upstream_pid: int

    def service(self, label: str, workers: int) -> ProxyHarness:
        """A fresh service with ``workers`` workers and the secret in its vault."""
        from vault.keystore import FileKeystore
        from vault.secret import SecretValue
        from vault.store import Vault

        home = self.tmp / label
        home.mkdir()
        vault = Vault.open(home, keystore=FileKeystore(self.tmp / "vault.key"))
        vault.set(SECRET, SecretValue(self.real), [NAME])
        sockets = Path(f"/tmp/ccwp-{os.getpid()}-{label}")
        return start_proxy(home, sockets, upstream_ca=self.ca_file,
                           extra=(f"--resolve={NAME}:127.0.0.1",), workers=workers)  # fmt: skip

    def lanes(self, proxy: ProxyHarness, runs: int) -> list[Lane]:
        want = hashlib.sha256(f"Bearer {self.real}".encode()).hexdigest()
        made = [proxy.register((SECRET,)) for _ in range(runs)]
        return [Lane(r.socket, f"Bearer {r.placeholders[SECRET]}", want) for r in made]


def throughput(the: Setup, workers: int, *, runs: int, rounds: int, seconds: float) -> None:
    """One worker against ``workers``, ``runs`` lanes each, interleaved over ``rounds``."""
    labels = ("w1", f"w{workers}")
    services = {label: the.service(label, n) for label, n in zip(labels, (1, workers), strict=True)}
    try:
        lanes = {label: the.lanes(h, runs) for label, h in services.items()}
        res: dict[str, list[Throughput]] = {label: [] for label in labels}
        for r in range(rounds):
            for label in labels if r % 2 == 0 else labels[::-1]:
                h, pid = services[label], the.upstream_pid
                t = measure_keepalive(lanes[label], seconds, port=the.port, cafile=h.ca_cert,
                                      proxy_pid=h.proc.pid, upstream_pid=pid)  # fmt: skip
                res[label].append(t)
                cores = t.rps * (t.proxy_cpu_ms or 0) / 1000  # over 1.0: more than one core
                say(f"  round {r + 1} {label:<4} x{runs} {t.rps:7.0f} req/s  CPU/req: proxy "
                    f"{t.proxy_cpu_ms or 0:5.2f} ms, clients {t.client_cpu_ms:5.2f} ms, "
                    f"upstream {t.upstream_cpu_ms or 0:5.2f} ms; proxy on {cores:4.2f} cores; "
                    f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        for h in services.values():
            h.close()
    med = {k: statistics.median(t.rps for t in v) for k, v in res.items()}
    cpu = {k: statistics.median(t.proxy_cpu_ms or 0 for t in v) for k, v in res.items()}
    one, many = labels
    ratios = [b.rps / a.rps for a, b in zip(res[one], res[many], strict=True)]
    say(f"median x{runs}: {one} {med[one]:.0f} req/s ({cpu[one]:.2f} ms proxy CPU/req), {many} "
        f"{med[many]:.0f} req/s ({cpu[many]:.2f} ms); ratio of medians "
        f"{med[many] / med[one]:.2f}x, per round {', '.join(f'{x:.2f}' for x in ratios)} "
        "(target >= 1.4x)")  # fmt: skip


def memory(the: Setup, label: str, workers: int, *, runs: int, requests: int = 20) -> None:
    """RSS and PSS of a service with ``runs`` runs, each holding a used keep-alive connection."""
    h = the.service(label, workers)
    clients = []
    try:
        for lane in the.lanes(h, runs):
            c = Client(unix(lane.socket)(the.port), port=the.port, cafile=h.ca_cert, tunnel=True)
            clients.append(c)
            req = c.request_bytes("GET", "/echo", {"Authorization": lane.authorization})
            for _ in range(requests):
                c.roundtrip(req)
        rows, z_rss, z_pss = _service_memory(h.proc.pid)
    finally:
        for c in clients:
            c.close()
        h.close()
    mb = 1024 / 1e6
    rss, pss = sum(r[2] for r in rows) * mb, sum(r[3] for r in rows) * mb
    detail = ", ".join(f"{role} {r * mb:.1f}/{p * mb:.1f}" for _, role, r, p in rows)
    say(f"memory {label}, {runs} runs: RSS {rss:.1f} MB, PSS {pss:.1f} MB (target RSS < 150 MB) "
        f"[{detail} MB RSS/PSS]; the zygote beside it: RSS {z_rss * mb:.1f} MB, PSS "
        f"{z_pss * mb:.1f} MB")  # fmt: skip


def main() -> int:  # pragma: no cover - a measurement
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--memory-runs", type=int, default=20)
    args = ap.parse_args()
    import trustme

    tmp = Path(tempfile.mkdtemp(prefix="ccwp-"))
    ca = trustme.CA()
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(NAME)
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    os.environ["COATCHECK_VAULT_KEY_FILE"] = str(tmp / "vault.key")
    up = subprocess.Popen([sys.executable, str(HERE / "upstream_fast.py"), str(cert), str(key)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert up.stdout is not None
        the = Setup(tmp, ca_file, "ghp_" + os.urandom(18).hex(), int(up.stdout.readline()), up.pid)
        if args.rounds:
            throughput(the, args.workers, runs=args.runs, rounds=args.rounds, seconds=args.seconds)
        if args.memory_runs:
            memory(the, "m1", 1, runs=args.memory_runs)
            memory(the, f"m{args.workers}", args.workers, runs=args.memory_runs)
    finally:
        if up.stdin:
            up.stdin.close()
        stop(up)
    return 0


if __name__ == "__main__":
    sys.exit(main())
