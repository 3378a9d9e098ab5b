"""The shared proxy's memory with 20 concurrent runs: a fresh service (default workers), 20
runs registered, each with a secret, each holding a keep-alive connection open on which it made
some requests (injected and scrubbed). Summed over the service's own processes (coordinator and
workers; a zygote beside it, which is the warm path's and not the proxy's, is given apart):
RSS, which counts the pages its processes share (interpreter, libraries) once per process, and
PSS (/proc/PID/smaps_rollup), which shares them out: the memory the service really takes."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.client import Client
from tests.bench.common import cmdline, memory_kib, say
from tests.bench.lab import Lab, service_pids

RUNS = 20
KB_MB = 1024 / 1e6  # KiB to MB


@dataclass
class Memory:
    runs: int
    requests_per_run: int
    processes: int
    rss_mb: float  # MB = 10^6 bytes, as the target is given
    pss_mb: float
    zygote_rss_mb: float | None
    zygote_pss_mb: float | None
    per_process: list[dict[str, object]]


def run(lab: Lab, *, requests_per_run: int) -> Memory:
    svc = lab.new_service("memory", None, RUNS, opaque=False)  # default workers, if built
    clients: list[Client] = []
    try:
        for t in svc.targets(lab.real):
            c = t.client(lab.echo_port)
            clients.append(c)
            req = c.request_bytes("GET", "/echo", {"Authorization": t.auth, "Accept": "*/*"})
            for _ in range(requests_per_run):
                if c.roundtrip(req)[0] != 200:
                    raise RuntimeError("memory: non-200")
        own, zygote = service_pids(svc.pid)
        mem = {pid: memory_kib(pid) for pid in own}
        per: list[dict[str, object]] = [
            {"pid": pid, "cmd": cmdline(pid)[-120:], "rss_kib": rss, "pss_kib": pss}
            for pid, (rss, pss) in mem.items()
        ]
        zy = [memory_kib(p) for p in zygote]
        got = Memory(
            RUNS,
            requests_per_run,
            len(own),
            sum(r for r, _ in mem.values()) * KB_MB,
            sum(p for _, p in mem.values()) * KB_MB,
            sum(r for r, _ in zy) * KB_MB if zy else None,
            sum(p for _, p in zy) * KB_MB if zy else None,
            per,
        )
    finally:
        for c in clients:
            c.close()
        lab.drop_service("memory")
    say(
        f"    {RUNS} runs x {requests_per_run} requests, connections open: "
        f"{got.processes} processes, RSS {got.rss_mb:.0f} MB, PSS {got.pss_mb:.0f} MB"
        + (f"; a zygote beside it: RSS {got.zygote_rss_mb:.0f} MB" if got.zygote_rss_mb else "")
    )
    return got
