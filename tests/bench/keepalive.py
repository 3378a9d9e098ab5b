"""Keep-alive HTTPS throughput: GET /echo with ``Authorization: Bearer <placeholder>`` (coatcheck
injects the real value on the way out and scrubs the echo on the way back), with 1 client and
with 4 concurrent clients (for coatcheck: 4 runs, each on its own run socket), for each mode:
direct, plain mitmdump, coatcheck with one worker, coatcheck with its default workers.

Threads drive the clients here; when tests/bench/workers_probe.py is there, coatcheck's
4-client cells use its ``measure_keepalive`` instead (a client process per run: no shared GIL).
In each round every (mode, clients) cell gets one window of the same length, in a rotated
order, so a busy neighbour hits them all alike; the report takes medians over rounds. The
proxy's CPU time per request (its whole process tree, from /proc) moves much less than
wall-clock figures on a shared machine.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.bench.client import Client, Target
from tests.bench.common import median, percentile, say, tree_cpu_seconds

CLIENTS = (1, 4)
MAX_PER_WINDOW = 1_000_000


@dataclass
class Sample:
    mode: str
    clients: int
    rps: float
    p50_ms: float | None  # one client only
    p99_ms: float | None
    requests: int
    cpu_ms: float | None  # the proxy's CPU time per request
    client_cpu_ms: float | None = None  # the clients', when they are processes of their own
    upstream_cpu_ms: float | None = None


def verify(target: Target, port: int, placeholder: str, real: str) -> str:
    """One request: the upstream got the expected Authorization, the client no real value."""
    c = target.client(port)
    try:
        status, headers, body = c.roundtrip(
            c.request_bytes("GET", "/echo", {"Authorization": target.auth, "Accept": "*/*"})
        )
    finally:
        c.close()
    want = hashlib.sha256(target.expect_upstream_auth.encode()).hexdigest().encode()
    seen = b"".join(k + b":" + v for k, v in headers.items()) + body
    problems = []
    if status != 200:
        problems.append(f"status {status}")
    if headers.get(b"x-auth-sha256") != want:
        problems.append("upstream did not receive the expected Authorization")
    if real.encode() in seen:
        problems.append("the real value reached the client")
    if placeholder.encode() not in body:
        problems.append("the echo lacks the placeholder")
    if problems:
        raise RuntimeError(f"{target.mode}: " + "; ".join(problems))
    if target.expect_upstream_auth != target.auth:
        return "upstream got the real value; client saw only the placeholder"
    return "upstream got the header unchanged"


def upstream_requests(port: int, cafile: Path) -> int:
    """The requests the /echo upstream has answered so far (this one included)."""
    c = Client(
        socket.create_connection(("127.0.0.1", port), timeout=10),
        port=port,
        cafile=cafile,
        tunnel=False,
    )
    try:
        status, _, body = c.roundtrip(c.request_bytes("GET", "/stats", {"Connection": "close"}))
        assert status == 200, status
        return int(json.loads(body)["requests"])
    finally:
        c.close()


def window(
    targets: list[Target], port: int, *, seconds: float, warmup: int, cafile: Path
) -> Sample:
    """One client per target, ``warmup`` requests each, then all of them for ``seconds``."""
    mode, n = targets[0].mode, len(targets)
    clients = [t.client(port) for t in targets]
    counts = [0] * n
    lat: list[float] = []
    errors: list[str] = []
    try:
        reqs = [
            c.request_bytes("GET", "/echo", {"Authorization": t.auth, "Accept": "*/*"})
            for c, t in zip(clients, targets, strict=True)
        ]
        for c, req in zip(clients, reqs, strict=True):
            for _ in range(warmup):
                if c.roundtrip(req)[0] != 200:
                    raise RuntimeError(f"{mode}: non-200 in warm-up")
        before = upstream_requests(port, cafile)
        gate = threading.Barrier(n + 1)
        clock = time.perf_counter
        end = [0.0]

        def drive(i: int) -> None:
            c, req, record = clients[i], reqs[i], n == 1
            gate.wait()
            stop_at = end[0]
            k = 0
            try:
                for _ in range(MAX_PER_WINDOW):
                    t0 = clock()
                    if t0 >= stop_at:
                        break
                    if c.roundtrip(req)[0] != 200:
                        raise RuntimeError(f"{mode}: non-200")
                    if record:
                        lat.append(clock() - t0)
                    k += 1
            except Exception as exc:  # noqa: BLE001 - reported below, never swallowed
                errors.append(f"{type(exc).__name__}: {exc}")
            counts[i] = k

        threads = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        cpu0 = tree_cpu_seconds(targets[0].pid)
        t_start = clock()
        end[0] = t_start + seconds
        gate.wait()
        for t in threads:
            t.join(seconds + 60)
        took = clock() - t_start
        cpu = tree_cpu_seconds(targets[0].pid) - cpu0
    finally:
        for c in clients:
            c.close()
    if errors:
        raise RuntimeError(f"{mode} x{n}: {errors[0]}")
    total = sum(counts)
    got = upstream_requests(port, cafile) - before - 1  # minus that /stats request
    if got != total:
        say(f"    (!) {mode} x{n}: the upstream saw {got} requests, the clients made {total}")
    flat = sorted(lat)
    return Sample(
        mode,
        n,
        rps=total / took,
        p50_ms=percentile(flat, 0.5) * 1000 if flat else None,
        p99_ms=percentile(flat, 0.99) * 1000 if flat else None,
        requests=total,
        cpu_ms=cpu * 1000 / total if targets[0].pid and total else None,
    )


Driver = Callable[[list[Target], float, int], Sample]  # (targets, seconds, warmup)


def run(
    modes: dict[str, list[Target]],
    port: int,
    cafile: Path,
    *,
    rounds: int,
    seconds: float,
    warmup: int,
    drivers: dict[str, Driver] | None = None,
) -> dict[str, dict[int, list[Sample]]]:
    """``modes`` maps a mode to its 4 targets (a mode's clients); ``drivers`` measures a mode's
    4-client cell instead of :func:`window` (client processes rather than threads)."""
    drivers = drivers or {}
    out: dict[str, dict[int, list[Sample]]] = {m: {n: [] for n in CLIENTS} for m in modes}
    names = list(modes)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # who goes first rotates
        # modes side by side for one client count, so the pairs the report divides are close
        for m, n in [(m, n) for n in CLIENTS for m in order]:
            if n > 1 and m in drivers:
                s = drivers[m](modes[m][:n], seconds, warmup)
            else:
                s = window(modes[m][:n], port, seconds=seconds, warmup=warmup, cafile=cafile)
            out[m][n].append(s)
            cpu = f"{s.cpu_ms:5.2f} ms" if s.cpu_ms is not None else "    -   "
            lat = f"p50 {s.p50_ms:6.2f} ms  p99 {s.p99_ms:6.2f} ms" if s.p50_ms else " " * 29
            say(f"    round {r + 1} {m:<13} x{n} {s.rps:7.0f} req/s  {lat}  proxy CPU/req {cpu}")
    return out


def summary(samples: dict[str, dict[int, list[Sample]]]) -> dict[str, dict[str, object]]:
    """Medians per mode and client count, plus every sample."""
    res: dict[str, dict[str, object]] = {}
    for m, by_n in samples.items():
        for n, got in by_n.items():
            res[f"{m} x{n}"] = {
                "mode": m,
                "clients": n,
                "rps": median(s.rps for s in got),
                "p50_ms": median(s.p50_ms for s in got),
                "p99_ms": median(s.p99_ms for s in got),
                "cpu_ms": median(s.cpu_ms for s in got),
                "client_cpu_ms": median(s.client_cpu_ms for s in got),
                "upstream_cpu_ms": median(s.upstream_cpu_ms for s in got),
                "samples": [asdict(s) for s in got],
            }
    return res
