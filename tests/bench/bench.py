"""coatcheck benchmark (`make bench`): everything issue 12 asks for, in one run.

1. keep-alive HTTPS throughput with 1 and 4 clients: direct, plain mitmdump, coatcheck with
   one worker and with its default workers (4 clients = 4 runs on 4 run sockets)   keepalive.py
2. the first server-sent event, directly and through a warm run's socket              sse.py
3. a bulk download and upload: direct, mitmdump, coatcheck scrubbing, an opaque host  bulk.py
4. the proxy's memory with 20 concurrent runs (RSS and PSS, all its processes)         memory.py
5. start-up: bare `docker run` vs `coatcheck run -- true` warm and cold, the CLI's own
   CPU per run, and a warm and a cold run's first request (curl in the sandbox)       startup.py
then one PASS/MISS line per target (report.py) and a Markdown block for the README's
"Performance" section (tables.py), also written with every number as JSON to
$COATCHECK_ARTIFACTS (default artifacts/): bench.md, bench.json.

The set-up (lab.py): a trustme CA, local TLS upstreams for a `.test` name (upstream_fast.py,
upstream_stream.py), mitmdump, coatcheck services; one client for every mode (client.py);
sections 1-3 are driven from sections.py. Only loopback traffic. Every loop is bounded in
count and time; sections stop early past the time budget. Ratios come from the same run,
interleaved. A measurement, not a test: it exits 0 unless the set-up fails (a section that
fails is reported, and the rest runs).
`--quick` is a smoke mode (few iterations, 8 MiB transfers): tests/bench/test_bench_smoke.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench import memory, report, startup, tables  # noqa: E402
from tests.bench.common import IMAGE, INHERITED, REPO, say  # noqa: E402
from tests.bench.lab import lab  # noqa: E402
from tests.bench.sections import bulk_section, keepalive_section, sse_section  # noqa: E402

SECTIONS = ("keepalive", "sse", "bulk", "memory", "startup")
BUDGET_S = 420.0  # sections stop repeating past this (the whole bench: about 8 minutes)
QUICK_BUDGET_S = 40.0


def options(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke mode: few iterations, 8 MiB")
    ap.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where bench.md and bench.json go [$COATCHECK_ARTIFACTS or artifacts/]",
    )
    ap.add_argument("--rounds", type=int, default=5, help="keep-alive rounds")
    ap.add_argument("--seconds", type=float, default=2.0, help="keep-alive window per cell")
    ap.add_argument("--warmup", type=int, default=30, help="keep-alive requests per client")
    ap.add_argument("--sse-samples", type=int, default=15)
    ap.add_argument("--hold-ms", type=int, default=1000, help="SSE stream hold after event 1")
    ap.add_argument("--bulk-mib", type=int, default=200)
    ap.add_argument("--bulk-rounds", type=int, default=5)
    ap.add_argument("--memory-requests", type=int, default=20, help="per run")
    ap.add_argument("--repeats", type=int, default=8, help="start-up repeats")
    ap.add_argument("--sse-repeats", type=int, default=3, help="warm/cold first-request pairs")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 1, 0.3, 5
        args.sse_samples, args.hold_ms = 3, 300
        args.bulk_mib, args.bulk_rounds = 8, 1
        args.memory_requests, args.repeats, args.sse_repeats = 3, 1, 1
    return args


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so every service and upstream is stopped on the way out


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    for name in INHERITED:
        os.environ.pop(name, None)
    began = time.monotonic()
    budget = QUICK_BUDGET_S if args.quick else BUDGET_S

    def deadline(share: float) -> float:
        """A section's last moment to start another repeat: a share of what is left."""
        left = began + budget - time.monotonic()
        return time.monotonic() + max(0.0, left) * share

    from importlib.metadata import version

    cpus = len(os.sched_getaffinity(0))
    machine = (
        f"{cpus} CPUs, Linux {platform.release()}, Python {platform.python_version()}, "
        f"mitmproxy {version('mitmproxy')}"
    )
    res: dict[str, Any] = {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "machine": machine,
            "cpus": cpus,
            "quick": args.quick,
            "image": IMAGE,
            "load_start": os.getloadavg()[0],
            "args": {k: v for k, v in vars(args).items() if k != "out"},
        },
        "errors": [],
    }
    say(
        f"coatcheck benchmark, {res['meta']['date']} ({machine}); "
        f"load average {res['meta']['load_start']:.1f}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-"))

    def section(name: str, title: str, body: Callable[[], None]) -> None:
        if name in args.skip:
            return
        say(f"\n== {title}")
        t0 = time.monotonic()
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - a failed section is reported, the rest runs
            res["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            say(f"  (!) {name} failed: {exc}")
            traceback.print_exc(file=sys.stdout)
        say(f"  ({name}: {time.monotonic() - t0:.0f} s)")

    try:
        need_services = any(s not in args.skip for s in ("keepalive", "sse", "bulk", "memory"))
        with lab(tmp, services=need_services) as the:
            res["built"] = {"workers": the.has_workers, "opaque": the.has_opaque}
            for e in the.errors:
                res["errors"].append(f"set-up: {e}")
                say(f"  (!) {e}")
            say(
                f"  built: workers {'yes' if the.has_workers else 'no'}, opaque hosts "
                f"{'yes' if the.has_opaque else 'no'}"
            )
            section(
                "keepalive",
                "1. keep-alive HTTPS GET /echo, 1 and 4 clients",
                lambda: keepalive_section(the, args, res),
            )
            section(
                "sse",
                "2. first server-sent event",
                lambda: sse_section(the, args, res, deadline(0.1)),
            )
            section(
                "bulk",
                "3. bulk download and upload",
                lambda: bulk_section(the, args, res, deadline(0.5)),
            )

            def mem() -> None:
                for label in [k for k in the.services if k != "memory"]:
                    the.drop_service(label)  # a quiet machine for what follows
                res["memory"] = asdict(memory.run(the, requests_per_run=args.memory_requests))

            section("memory", "4. proxy memory with 20 concurrent runs", mem)

            def start() -> None:
                got = startup.run(
                    tmp,
                    repeats=args.repeats,
                    sse_repeats=args.sse_repeats,
                    deadline=deadline(0.9),
                    ca_file=the.ca_file,
                    sse_port=the.stream_port,
                )
                res["startup"] = startup.summary(got)

            section("startup", f"5. run start-up: `{IMAGE} true`, interleaved", start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    res["meta"]["load_end"] = os.getloadavg()[0]
    res["meta"]["seconds"] = time.monotonic() - began
    cks = report.checks(res)
    res["checks"] = [asdict(c) for c in cks]
    md = tables.markdown(res, cks)
    say(f"\n== targets (the bench took {res['meta']['seconds']:.0f} s)")
    width = max(len(c.name) for c in cks)
    for c in cks:
        if c.verdict in ("PASS", "MISS"):
            say(f"  {c.verdict} {c.name:<{width}}  {c.value:>9}  (target {c.target})")
        elif c.verdict:
            say(f"  n/a  {c.name:<{width}}  {c.verdict[4:-1]}  (target {c.target})")
    for e in res["errors"]:
        say(f"  FAILED {e}")
    out = args.out or Path(os.environ.get("COATCHECK_ARTIFACTS") or REPO / "artifacts")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.md").write_text(md)
    (out / "bench.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    say(f"\n== summary (Markdown, also in {out / 'bench.md'}; every number in bench.json)\n")
    say(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
