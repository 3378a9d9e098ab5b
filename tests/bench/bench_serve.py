"""coatcheck serve benchmark: the scheduler and the run history at 10,000 deployments.

1. History: one database with 10,000 deployments and 1,000,000 finished runs
   (``tests/runner/history/bulk.py``); p50/p99 of the queries the service and the CLI make:
   ``runs list`` (all, by deployment, by deployment and status, a second page), the daily-cap
   queries (``recent_starts``, ``start_times``) and ``consecutive_failures``; then one
   retention pass (``History.prune``) over all of it.
2. Scheduler: the same 10,000 deployments become command jobs with varied crons and zones
   (5% every minute, 10% every 5 minutes, 50% hourly, 35% daily). The real ``Scheduler.run``
   loop runs in a thread on the real clock for ``--seconds`` (two minute boundaries at least);
   its supervisor only records each submitted run (nothing is launched). Figures: the process's
   CPU time over wall time while it runs (``idle CPU``: nothing else runs in this process), the
   CPU and wall time of each wake, and fire lateness = submit time - slot, p50/p99.

A measurement, not a test: exits 0 unless the set-up itself fails. ``--json`` prints the
figures as one JSON object after the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


from runner.history.store import History  # noqa: E402
from runner.serve.book import Book  # noqa: E402
from runner.serve.launcher import Launch  # noqa: E402
from runner.serve.scheduler import Scheduler  # noqa: E402
from runner.serve.service import configure_logging  # noqa: E402
from tests.runner.history.bulk import fill  # noqa: E402

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")


def say(text: str = "") -> None:
    print(text, flush=True)


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def quiet_logs() -> None:
    """The service's JSON log lines, rendered as in ``coatcheck serve``, into /dev/null."""
    configure_logging(open(os.devnull, "w"))  # noqa: SIM115 - open for the whole run


# -- 1. history queries ----------------------------------------------------------------------
def timed(calls: int, fn: Any) -> dict[str, float]:
    ms = []
    for i in range(calls):
        t = time.perf_counter()
        fn(i)
        ms.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": pct(ms, 0.5), "p99_ms": pct(ms, 0.99)}


def history_bench(history: History, names: list[str], calls: int) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    picks = [rng.choice(names) for _ in range(calls)]
    day = history.clock() - timedelta(hours=24)
    runs = history.runs
    page = {p: runs.list_runs(deployment=p, limit=50)[-1].id for p in set(picks)}
    return {
        "runs list (all, 50)": timed(calls, lambda i: runs.list_runs(limit=50)),
        "runs list --status failed": timed(calls, lambda i: runs.list_runs(status="failed")),
        "runs list --deployment": timed(calls, lambda i: runs.list_runs(deployment=picks[i])),
        "runs list --deployment --status": timed(
            calls, lambda i: runs.list_runs(deployment=picks[i], status="failed", limit=50)
        ),
        "runs list, second page": timed(
            calls, lambda i: runs.list_runs(deployment=picks[i], before=page[picks[i]])
        ),
        "recent_starts (24 h)": timed(calls, lambda i: runs.recent_starts(picks[i], day)),
        "start_times (24 h)": timed(calls, lambda i: runs.start_times(picks[i], day)),
        "consecutive_failures": timed(calls, lambda i: runs.consecutive_failures(picks[i])),
        "deployments list": timed(max(3, calls // 50), lambda i: history.deployments.list()),
    }


# -- 2. the scheduler ------------------------------------------------------------------------
def cron_of(i: int) -> tuple[str, str]:
    """A varied schedule for deployment ``i``: (cron, timezone)."""
    zone = ZONES[i % len(ZONES)]
    kind = i % 20
    if kind == 0:
        return "* * * * *", zone
    if kind in (1, 2):
        return "*/5 * * * *", zone
    if kind < 13:
        return f"{(i * 7) % 60} * * * *", zone
    return f"{(i * 11) % 60} {(i * 5) % 24} * * *", zone


def job_toml(name: str, cron: str, zone: str) -> str:
    return (
        f'name = "{name}"\ncommand = ["true"]\n[schedule]\ncron = "{cron}"\n'
        f'timezone = "{zone}"\nmin_interval = "1m"\nmax_runtime = "10m"\n'
    )


class Recorder:
    """A supervisor that launches nothing: it notes (deployment, run id, wall time)."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, float]] = []

    def submit(self, launch: Launch, overlap: str) -> str:
        self.submitted.append((launch.deployment, launch.run_id, time.time()))
        return "start"


class TimedScheduler(Scheduler):
    """The real scheduler; each wake's CPU (this thread) and wall time are noted."""

    wakes: list[tuple[float, float]]

    def tick(self, now: datetime) -> float:
        c, w = time.thread_time(), time.perf_counter()
        try:
            return super().tick(now)
        finally:
            self.wakes.append((time.thread_time() - c, time.perf_counter() - w))


def deploy_all(history: History, names: list[str], base: Path) -> float:
    t = time.perf_counter()
    for i, name in enumerate(names):
        cron, zone = cron_of(i)
        history.deployments.upsert(name, job_toml=job_toml(name, cron, zone),
                                   job_base=str(base), cron=cron, timezone=zone)  # fmt: skip
    return time.perf_counter() - t


def scheduler_bench(history: History, seconds: float) -> dict[str, Any]:
    recorder = Recorder()
    sched = TimedScheduler(history, recorder, Book())  # type: ignore[arg-type]
    sched.wakes = []
    t, c = time.perf_counter(), cpu_s()
    sched.tick(datetime.now(UTC))  # the first wake parses every job: start-up, not idle
    first = {"wall_s": time.perf_counter() - t, "cpu_s": cpu_s() - c}
    sched.wakes.clear()
    stop = threading.Event()
    thread = threading.Thread(target=sched.run, args=(stop,), name="bench-scheduler")
    t0, c0 = time.perf_counter(), cpu_s()
    started = time.time()
    thread.start()
    stop.wait(seconds)
    stop.set()
    sched.poke()
    thread.join(timeout=120)
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    slots = {}
    with history.db.read() as conn:
        rows = conn.execute(
            "SELECT id, slot FROM runs WHERE slot IS NOT NULL AND created_at >= ?",
            (datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),),
        ).fetchall()
    for r in rows:
        slots[r["id"]] = datetime.strptime(r["slot"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    fired = [(slots[rid], at) for _d, rid, at in recorder.submitted if rid in slots]
    late = [at - slot.timestamp() for slot, at in fired]
    per_slot: dict[datetime, int] = {}
    for slot, _at in fired:
        per_slot[slot] = per_slot.get(slot, 0) + 1
    with history.db.read() as conn:
        missed = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN ('missed', 'skipped') AND created_at >= ?",
            (datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),),
        ).fetchone()[0]
    wake_cpu = [w[0] * 1000 for w in sched.wakes]
    wake_wall = [w[1] * 1000 for w in sched.wakes]
    return {
        "first_wake": first,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / wall,
        "wakes": len(sched.wakes),
        "wake_cpu_ms_p50": statistics.median(wake_cpu) if wake_cpu else 0.0,
        "wake_wall_ms_max": max(wake_wall, default=0.0),
        "fires": len(fired),
        "slots": len(per_slot),
        "biggest_slot": max(per_slot.values(), default=0),
        "missed_or_skipped": missed,
        "lateness_p50_s": pct(late, 0.5) if late else None,
        "lateness_p99_s": pct(late, 0.99) if late else None,
        "lateness_max_s": max(late, default=None),
    }


def count_runs(history: History) -> int:
    with history.db.read() as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


# -- the report ------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--deployments", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=1_000_000, help="history rows")
    ap.add_argument("--calls", type=int, default=500, help="calls per history query")
    ap.add_argument("--seconds", type=float, default=130.0, help="scheduler run time")
    ap.add_argument("--skip-prune", action="store_true", help="skip the retention pass")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    quiet_logs()
    out: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                           f"Python {platform.python_version()}"}  # fmt: skip
    say(f"# coatcheck serve bench: {args.deployments:,} deployments, {args.runs:,} runs "
        f"({out['machine']})")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-serve-") as tmp:
        history = History.open(Path(tmp) / "history.sqlite3")
        t = time.perf_counter()
        names = fill(history, args.deployments, args.runs)
        out["fill_s"] = time.perf_counter() - t
        say(f"filled the history in {out['fill_s']:.1f} s")
        queries = history_bench(history, names, args.calls)
        out["queries"] = queries
        say(f"\n| history query ({args.runs:,} rows) | p50 ms | p99 ms |\n|---|---:|---:|")
        for name, q in queries.items():
            say(f"| {name} | {q['p50_ms']:.2f} | {q['p99_ms']:.2f} |")
        (Path(tmp) / "jobs").mkdir()
        out["deploy_s"] = deploy_all(history, names, Path(tmp) / "jobs")
        say(f"\nre-deployed {len(names):,} as scheduled jobs in {out['deploy_s']:.1f} s; "
            f"running the scheduler for {args.seconds:.0f} s...")  # fmt: skip
        s = scheduler_bench(history, args.seconds)
        out["scheduler"] = s
        say(f"\n| scheduler, {len(names):,} deployments | figure |\n|---|---:|")
        say(f"| first wake (parses every job) | {s['first_wake']['wall_s']:.2f} s |")
        say(f"| CPU over {s['wall_s']:.0f} s | {s['cpu_s']:.2f} s ({s['cpu_pct']:.2f}%) |")
        say(f"| wakes; CPU per wake p50 | {s['wakes']}; {s['wake_cpu_ms_p50']:.0f} ms |")
        say(f"| longest wake | {s['wake_wall_ms_max']:.0f} ms |")
        say(f"| fires / slots / largest slot | {s['fires']} / {s['slots']} / "
            f"{s['biggest_slot']} |")  # fmt: skip
        say(f"| missed or skipped | {s['missed_or_skipped']} |")
        if s["lateness_p50_s"] is not None:
            late = (s[f"lateness_{k}_s"] * 1000 for k in ("p50", "p99", "max"))
            say("| fire lateness p50 / p99 / max | {:.0f} / {:.0f} / {:.0f} ms |".format(*late))
        if not args.skip_prune:
            before = count_runs(history)
            t = time.perf_counter()
            history.prune()
            out["prune"] = {"s": time.perf_counter() - t, "dropped": before - count_runs(history)}
            say(f"\nretention pass: {out['prune']['s']:.1f} s, "
                f"{out['prune']['dropped']:,} of {before:,} rows dropped")  # fmt: skip
        history.close()
    if args.json:
        say(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
