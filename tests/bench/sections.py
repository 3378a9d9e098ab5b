"""The sections of the benchmark that measure through the lab's proxies: keep-alive, SSE and
bulk transfers; each puts its figures into the results dict under its own name."""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from tests.bench import bulk, keepalive, sse
from tests.bench.client import Target, download
from tests.bench.common import MIB, SECRET, say
from tests.bench.lab import Lab


def keepalive_section(the: Lab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    w1 = the.services["coatcheck-w1"]
    ph = w1.runs[0].placeholders[SECRET]
    bearer = f"Bearer {ph}"
    modes: dict[str, list[Target]] = {
        "direct": [the.direct(bearer)] * 4,
        "mitmdump": [the.mitmdump(bearer)] * 4,
    }
    for label, svc in the.services.items():
        modes[label] = svc.targets(the.real)
    for m, ts in modes.items():
        for t in ts:
            ok = keepalive.verify(t, the.echo_port, t.auth.split()[-1], the.real)
        say(f"  verify {m:<13} ok: {ok}")
    drivers = {label: d for label in the.services if (d := _process_driver(the, label))}
    how = "a client process per run" if drivers else "a client thread per run (no workers_probe)"
    say(
        f"\n  per round: each (mode, clients) cell {args.seconds:g} s after {args.warmup} "
        f"warm-up requests a client; {args.rounds} rounds; 4 clients on coatcheck: {how}"
    )
    got = keepalive.run(
        modes,
        the.echo_port,
        the.ca_file,
        rounds=args.rounds,
        seconds=args.seconds,
        warmup=args.warmup,
        drivers=drivers,
    )
    res["keepalive"] = keepalive.summary(got)


def _process_driver(the: Lab, label: str) -> keepalive.Driver | None:
    """W's measurement of concurrent runs (one client process per run), if it is there."""
    try:
        from tests.bench.workers_probe import Lane, measure_keepalive
    except ImportError:
        return None
    svc = the.services[label]
    want = hashlib.sha256(f"Bearer {the.real}".encode()).hexdigest()

    def drive(targets: list[Target], seconds: float, warmup: int) -> keepalive.Sample:
        runs = svc.runs[: len(targets)]
        lanes = [Lane(r.socket, f"Bearer {r.placeholders[SECRET]}", want) for r in runs]
        got = measure_keepalive(
            lanes,
            seconds,
            port=the.echo_port,
            cafile=svc.harness.ca_cert,
            proxy_pid=svc.pid,
            upstream_pid=the.echo_pid,
            warmup=warmup,
        )
        return keepalive.Sample(
            label,
            len(lanes),
            got.rps,
            None,
            None,
            got.requests,
            got.proxy_cpu_ms,
            got.client_cpu_ms,
            got.upstream_cpu_ms,
        )

    return drive


def sse_section(the: Lab, args: argparse.Namespace, res: dict[str, Any], deadline: float) -> None:
    svc = the.main
    t = svc.targets(the.real)[0]
    targets = {"direct": the.direct(t.auth), "mitmdump": the.mitmdump(t.auth), svc.label: t}
    got = sse.run(
        targets, the.stream_port, samples=args.sse_samples, hold_ms=args.hold_ms, deadline=deadline
    )
    res["sse"] = sse.summary(got, args.hold_ms)


def bulk_section(the: Lab, args: argparse.Namespace, res: dict[str, Any], deadline: float) -> None:
    svc = the.main
    t = svc.targets(the.real)[0]
    targets = {"direct": the.direct(t.auth), "mitmdump": the.mitmdump(t.auth), "coatcheck": t}
    t.mode = "coatcheck"  # whichever service: the mode the targets name
    opaque = svc.opaque_target(the.ca_file)
    if opaque is not None:
        try:
            opaque.mode = "coatcheck-opaque"
            download(opaque, the.stream_port, MIB, deadline_s=30)
            targets[opaque.mode] = opaque
        except Exception as exc:  # noqa: BLE001 - reported; the rest is still measured
            res["errors"].append(f"bulk: the opaque host failed: {exc}")
            say(f"  (!) the opaque host failed, left out: {exc}")
    size = args.bulk_mib * MIB
    say(f"  {args.bulk_mib} MiB each way, one transfer at a time, up to {args.bulk_rounds} rounds")
    got = bulk.run(
        targets,
        the.stream_port,
        size=size,
        rounds=args.bulk_rounds,
        deadline=deadline,
        transfer_limit_s=120,
    )
    res["bulk"] = bulk.summary(got)
