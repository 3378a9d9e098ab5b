"""Retention of finished runs, per deployment (plain ``coatcheck run`` runs count as one more):
keep the last 50 finished runs, always the last 10 failures and the latest success, and drop
the rest once they are older than 30 days. Unfinished runs are never dropped.

``prune`` deletes rows and returns the run directories of the rows it dropped;
``remove_run_dirs`` deletes those (the caller decides when). ``prune`` reads the whole table
once: a service should run it on a ``Database`` of its own, not the one its threads share.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from runner.history.db import Database, to_text
from runner.history.runrow import FAILURES, FINISHED, in_list

KEEP_LAST: Final = 50
KEEP_FAILURES: Final = 10
MAX_AGE: Final = timedelta(days=30)
DELETE_BATCH: Final = 1000


def prune(
    db: Database,
    *,
    now: datetime,
    keep_last: int = KEEP_LAST,
    keep_failures: int = KEEP_FAILURES,
    max_age: timedelta = MAX_AGE,
) -> list[Path]:
    """Delete the finished runs the rule lets go; returns their run directories."""
    failure = f"status IN {in_list(FAILURES)}"
    sql = f"""
        WITH ranked AS (
            SELECT seq, run_dir, status, coalesce(finished_at, created_at) AS ended,
                row_number() OVER (PARTITION BY deployment ORDER BY seq DESC) AS nth,
                row_number() OVER (PARTITION BY deployment, {failure} ORDER BY seq DESC)
                    AS nth_kind,
                row_number() OVER (PARTITION BY deployment, status = 'succeeded'
                    ORDER BY seq DESC) AS nth_success
            FROM runs WHERE status IN {in_list(FINISHED)}
        )
        SELECT seq, run_dir FROM ranked
        WHERE nth > ? AND ended < ?
            AND NOT ({failure} AND nth_kind <= ?)
            AND NOT (status = 'succeeded' AND nth_success <= 1)
    """  # noqa: S608 - fixed words only
    cutoff = to_text(now - max_age)
    with db.read() as conn:
        doomed = conn.execute(sql, (keep_last, cutoff, keep_failures)).fetchall()
    # Finished rows never change again, so they can go in small transactions that don't keep
    # a scheduler waiting for the write lock.
    for start in range(0, len(doomed), DELETE_BATCH):
        with db.write() as conn:
            batch = doomed[start : start + DELETE_BATCH]
            conn.executemany("DELETE FROM runs WHERE seq = ?", [(r["seq"],) for r in batch])
    return [Path(r["run_dir"]) for r in doomed if r["run_dir"]]


def remove_run_dirs(paths: Iterable[Path], *, runs_root: Path) -> list[Path]:
    """Delete each run directory that is a real directory directly inside ``runs_root``
    (anything else is left alone). Returns what was removed."""
    root = runs_root.resolve()
    removed = []
    for path in paths:
        if path.is_symlink() or not path.is_dir() or path.resolve().parent != root:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
