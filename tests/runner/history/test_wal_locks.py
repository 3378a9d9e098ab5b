"""A second ``History`` on the same file in one process must not break the first one's WAL.

``Database.open`` used to open and close a raw descriptor of an existing database file. Closing
any descriptor of a file drops every POSIX lock the process holds on it, those of SQLite's own
open connections included; another process then believed nobody used the file and deleted the
WAL under the first connection, whose later writes were lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runner.history import History
from tests.runner.history.helpers import Clock, deploy

ROOT = Path(__file__).resolve().parents[3]
COUNT = """
import sys
from pathlib import Path
from runner.history import History
with History.open(Path(sys.argv[1])) as h:
    print(len(h.runs.list_runs("nightly", limit=1000)))
"""


def rows_seen_elsewhere(db_path: Path) -> int:
    """How many runs a fresh connection in another process sees (it opens, then closes)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", COUNT, str(db_path)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout)


def test_opening_and_closing_a_second_history_keeps_the_first_ones_wal(
    db_path: Path, clock: Clock
) -> None:
    wal = db_path.with_name(db_path.name + "-wal")
    with History.open(db_path, clock=clock) as first:
        deploy(first)
        first.runs.create_triggered("nightly", "manual", actor="a")
        History.open(db_path, clock=clock).close()  # the same process, the same file
        first.runs.create_triggered("nightly", "manual", actor="a")
        assert rows_seen_elsewhere(db_path) == 2
        assert wal.exists()  # the other process did not take it as the last user
        first.runs.create_triggered("nightly", "manual", actor="a")  # still reaches the file
        assert rows_seen_elsewhere(db_path) == 3
        assert wal.exists()
    with History.open(db_path, clock=clock) as again:
        assert len(again.runs.list_runs("nightly", limit=1000)) == 3
