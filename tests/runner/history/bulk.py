"""Fill a history with many rows, fast, for benchmarks (not a test): ``fill(history, 10, 10**6)``.

Rows go in with ``executemany`` in one transaction per 50,000; statuses, triggers and times
vary so that every ``runs list`` filter has something to find.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import cycle

from runner.history import History
from runner.history.db import to_text

STATUSES = ("succeeded", "succeeded", "succeeded", "failed", "timed_out", "error", "skipped")
TRIGGERS = ("schedule", "manual", "api", "webhook")
BATCH = 50_000


def fill(history: History, n_deployments: int, n_runs: int) -> list[str]:
    """Make ``n_deployments`` deployments (``bench-0``...) and ``n_runs`` finished runs spread
    over them, one minute apart, ending at the history's clock. Returns the deployment names."""
    names = [f"bench-{i}" for i in range(n_deployments)]
    for name in names:
        history.deployments.upsert(name, job_toml="", job_base="/", cron="* * * * *")
    start = history.clock() - timedelta(minutes=n_runs)
    statuses, triggers = cycle(STATUSES), cycle(TRIGGERS)
    done = 0
    while done < n_runs:
        batch = []
        for i in range(done, min(done + BATCH, n_runs)):
            when = to_text(start + timedelta(minutes=i))
            status, trigger = next(statuses), next(triggers)
            slot = when if trigger == "schedule" else None
            batch.append(
                (f"r-{i:016x}", names[i % n_deployments], status, trigger, slot, when, when,
                 when, when, 0 if status == "succeeded" else 1)
            )  # fmt: skip
        with history.db.write() as conn:
            conn.executemany(
                "INSERT INTO runs (id, deployment, status, trigger, slot, created_at, "
                "scheduled_at, started_at, finished_at, exit_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
        done += len(batch)
    return names
