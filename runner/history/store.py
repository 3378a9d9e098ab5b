"""``History``: the run-history database and its tables, behind one object.

    with History.open(history_path(home)) as history:
        history.deployments.upsert("nightly", job_toml=..., job_base=..., cron="0 3 * * *")
        run_id = history.runs.claim_slot("nightly", slot)

The clock is injectable (tests use a controllable one); every time it returns must be aware.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from core.runids import new_run_id
from runner.history import retention
from runner.history.db import Database, utc_now
from runner.history.deployments import Deployments
from runner.history.runs import Runs


class History:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_run_id,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.deployments = Deployments(db, clock=clock)
        self.runs = Runs(db, clock=clock, new_id=new_id, owner=owner)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_run_id,
        owner: str | None = None,
    ) -> History:
        """Open (creating and migrating) the history file at ``path``. ``owner`` ("host:pid"
        of a service) is recorded on the runs it starts."""
        return cls(Database.open(path), clock=clock, new_id=new_id, owner=owner)

    def prune(
        self,
        *,
        keep_last: int = retention.KEEP_LAST,
        keep_failures: int = retention.KEEP_FAILURES,
        max_age: timedelta = retention.MAX_AGE,
    ) -> list[Path]:
        """Apply retention now; returns the dropped runs' directories for the caller to remove
        (``retention.remove_run_dirs``)."""
        return retention.prune(
            self.db, now=self.clock(), keep_last=keep_last, keep_failures=keep_failures,
            max_age=max_age,
        )  # fmt: skip

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
