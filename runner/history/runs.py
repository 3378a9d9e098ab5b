"""The ``runs`` table: one row per run (append-only; status moves on), plus the collapsed rows
of skipped and missed slots.

Each way to start a run has its own uniqueness, enforced by the schema rather than by a check
then an insert, so two processes can't both win: a schedule run is unique on (deployment,
slot), an API run on (deployment, idempotency key), a webhook run on (deployment, delivery id).
Skipped and missed rows keep their slots in ``missed_first``..``missed_last`` (not in ``slot``)
so that consecutive ones with the same reason collapse into one row with a ``count``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from core.runids import new_run_id
from runner.history.db import Database, from_text, to_text, utc_now
from runner.history.errors import RunNotFound
from runner.history.runrow import FINISHED, Run, RunStatus, Trigger, run_of


class Runs:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_run_id,
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._new_id = new_id
        self._owner = owner

    # -- starting -------------------------------------------------------------------------
    def claim_slot(
        self, deployment: str, slot: datetime, *, config_version: int | None = None
    ) -> str | None:
        """A pending schedule run for ``slot``, or None when a run for it exists already
        (another scheduler claimed it)."""
        run_id = self._new_id()
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (id, deployment, status, trigger, slot, actor, created_at, "
                "scheduled_at, config_version, owner) VALUES (?, ?, 'pending', 'schedule', ?, "
                "'scheduler', ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (run_id, deployment, to_text(slot), self._now(), to_text(slot), config_version,
                 self._owner),
            )  # fmt: skip
            return run_id if cur.rowcount == 1 else None

    def create_triggered(
        self,
        deployment: str | None,
        trigger: Literal["manual", "api", "webhook"],
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
        delivery_id: str | None = None,
        config_version: int | None = None,
        run_dir: str | None = None,
    ) -> tuple[str, bool]:
        """A pending run started by hand, the API or a webhook: ``(run id, True)``, or the
        existing run's ``(id, False)`` for a repeated idempotency key or delivery id. A plain
        ``coatcheck run`` is ``(None, "manual", actor="cli")``."""
        if trigger not in ("manual", "api", "webhook"):
            raise ValueError(f"use claim_slot for schedule runs, not trigger {trigger!r}")
        run_id = self._new_id()
        now = self._now()
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (id, deployment, status, trigger, actor, idempotency_key, "
                "delivery_id, created_at, scheduled_at, config_version, run_dir, owner) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (run_id, deployment, trigger, actor, idempotency_key, delivery_id, now, now,
                 config_version, run_dir, self._owner),
            )  # fmt: skip
            if cur.rowcount == 1:
                return run_id, True
            api = trigger == "api"
            column, key = (
                ("idempotency_key", idempotency_key) if api else ("delivery_id", delivery_id)
            )
            row = conn.execute(
                f"SELECT id FROM runs WHERE deployment = ? AND trigger = ? AND {column} = ?",  # noqa: S608
                (deployment, trigger, key),
            ).fetchone()
            if row is None:  # a run id collision, once in 2**64: the caller may retry
                raise RuntimeError(f"run id {run_id} exists already")
            return str(row["id"]), False

    def mark_running(
        self, run_id: str, *, run_dir: str | None = None, started_at: datetime | None = None
    ) -> bool:
        """pending -> running. False when the run is no longer pending (e.g. interrupted)."""
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', started_at = ?, "
                "run_dir = COALESCE(?, run_dir) WHERE id = ? AND status = 'pending'",
                (to_text(started_at or self._clock()), run_dir, run_id),
            )
            return cur.rowcount == 1

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        exit_code: int | None = None,
        reason: str | None = None,
        error_class: str | None = None,
    ) -> bool:
        """An unfinished run ends. False when it had ended already (its first end stays)."""
        if status not in FINISHED:
            raise ValueError(f"{status!r} is not an end; use one of {', '.join(FINISHED)}")
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, exit_code = ?, reason = ?, error_class = ?, "
                "finished_at = ? WHERE id = ? AND status IN ('pending', 'running')",
                (status, exit_code, reason, error_class, self._now(), run_id),
            )
            return cur.rowcount == 1

    def set_warnings(self, run_id: str, warnings: tuple[str, ...] | list[str]) -> bool:
        """Keep what a run warned about (a JSON list); False when there is no such run."""
        text = json.dumps(list(warnings)) if warnings else None
        with self._db.write() as conn:
            cur = conn.execute("UPDATE runs SET warnings = ? WHERE id = ?", (text, run_id))
            return cur.rowcount == 1

    # -- what didn't run ------------------------------------------------------------------
    def record_skip(
        self,
        deployment: str,
        reason: str,
        *,
        slot: datetime | None = None,
        trigger: Trigger = "schedule",
        at: datetime | None = None,
    ) -> str:
        """A run refused (``overlap``, ``daily_cap``, ``min_interval``, ...); collapses into the
        deployment's newest row when that is a skip with the same reason and trigger."""
        return self._record("skipped", deployment, reason, trigger, 1, slot, slot, at)

    def record_missed(
        self,
        deployment: str,
        count: int,
        first: datetime,
        last: datetime,
        *,
        reason: str = "downtime",
        at: datetime | None = None,
    ) -> str:
        """``count`` slots from ``first`` to ``last`` that passed while nothing ran."""
        return self._record("missed", deployment, reason, "schedule", count, first, last, at)

    def _record(
        self,
        status: Literal["skipped", "missed"],
        deployment: str,
        reason: str,
        trigger: Trigger,
        count: int,
        first: datetime | None,
        last: datetime | None,
        at: datetime | None,
    ) -> str:
        if count < 1:
            raise ValueError("count must be at least 1")
        when = to_text(at or self._clock())
        lo, hi = (to_text(first) if first else None), (to_text(last) if last else None)
        with self._db.write() as conn:
            newest = conn.execute(
                "SELECT id, status, reason, trigger FROM runs WHERE deployment = ? "
                "ORDER BY seq DESC LIMIT 1",
                (deployment,),
            ).fetchone()
            if newest is not None and tuple(newest)[1:] == (status, reason, trigger):
                conn.execute(
                    "UPDATE runs SET count = count + ?, finished_at = ?, "
                    "missed_first = COALESCE(min(missed_first, ?), missed_first, ?), "
                    "missed_last = COALESCE(max(missed_last, ?), missed_last, ?) WHERE id = ?",
                    (count, when, lo, lo, hi, hi, newest["id"]),
                )
                return str(newest["id"])
            run_id = self._new_id()
            conn.execute(
                "INSERT INTO runs (id, deployment, status, trigger, reason, created_at, "
                "scheduled_at, finished_at, count, missed_first, missed_last) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, deployment, status, trigger, reason, when, lo or when, when, count,
                 lo, hi),
            )  # fmt: skip
            return run_id

    # -- service start --------------------------------------------------------------------
    def interrupt_unfinished(
        self, now: datetime | None = None, *, alive: Callable[[str | None], bool] = lambda _o: False
    ) -> list[Run]:
        """Every pending or running run whose service is gone (``alive(owner)`` is False)
        becomes ``error``/``interrupted``. Returns them, ended, so the caller can remove their
        containers. A live service's runs are left alone."""
        when = to_text(now or self._clock())
        with self._db.write() as conn:
            rows = conn.execute(
                "SELECT id, owner FROM runs WHERE status IN ('pending', 'running')"
            ).fetchall()
            ended = []
            for row in rows:
                if alive(row["owner"]):
                    continue
                ended += conn.execute(
                    "UPDATE runs SET status = 'error', reason = 'interrupted', "
                    "error_class = 'Interrupted', finished_at = ? WHERE id = ? RETURNING *",
                    (when, row["id"]),
                ).fetchall()
        return sorted((run_of(r) for r in ended), key=lambda r: r.seq)

    # -- questions ------------------------------------------------------------------------
    def running_runs(self, deployment: str | None = None) -> list[Run]:
        """Runs now running, of ``deployment`` or of all."""
        return self._select("status = 'running'", deployment)

    def pending_runs(self, deployment: str | None = None) -> list[Run]:
        """Runs waiting to start (queued), of ``deployment`` or of all."""
        return self._select("status = 'pending'", deployment)

    def recent_starts(self, deployment: str, since: datetime) -> int:
        """Runs created at or after ``since`` that were not skipped or missed: what a rolling
        daily cap counts (a pending run counts; it will start)."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM runs WHERE deployment = ? AND created_at >= ? "
                "AND status NOT IN ('skipped', 'missed')",
                (deployment, to_text(since)),
            ).fetchone()
        return int(row[0])

    def start_times(self, deployment: str, since: datetime) -> list[datetime]:
        """When the runs ``recent_starts`` counts were created, oldest first (Retry-After)."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT created_at FROM runs WHERE deployment = ? AND created_at >= ? "
                "AND status NOT IN ('skipped', 'missed') ORDER BY created_at",
                (deployment, to_text(since)),
            ).fetchall()
        return [t for r in rows if (t := from_text(r[0])) is not None]

    def consecutive_failures(self, deployment: str) -> int:
        """Failures (failed, timed_out, error) since the deployment's latest success."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM runs WHERE deployment = ? "
                "AND status IN ('failed', 'timed_out', 'error') "
                "AND seq > COALESCE((SELECT max(seq) FROM runs WHERE deployment = ? "
                "AND status = 'succeeded'), 0)",
                (deployment, deployment),
            ).fetchone()
        return int(row[0])

    def list_runs(
        self,
        deployment: str | None = None,
        status: RunStatus | None = None,
        *,
        limit: int = 50,
        before: str | None = None,
    ) -> list[Run]:
        """Newest first; ``before`` (a run id) continues a listing after that run."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where: list[str] = ["1"]
        args: list[object] = []
        if deployment is not None:
            where.append("deployment = ?")
            args.append(deployment)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if before is not None:
            where.append("seq < ?")
            args.append(self.get_run(before).seq)
        sql = f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"  # noqa: S608
        with self._db.read() as conn:
            return [run_of(r) for r in conn.execute(sql, (*args, limit)).fetchall()]

    def get_run(self, run_id: str) -> Run:
        """The run of that id, or of a unique prefix of one (at least 4 characters)."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchall()
            if not rows and len(run_id) >= 4:
                rows = conn.execute(
                    "SELECT * FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                    (run_id, run_id + "\U0010ffff"),
                ).fetchall()
        if len(rows) == 1:
            return run_of(rows[0])
        kind = "more than one run starts with" if rows else "no run"
        raise RunNotFound(f"{kind} {run_id!r}; `coatcheck runs list` shows the runs")

    def _select(self, condition: str, deployment: str | None) -> list[Run]:
        sql = f"SELECT * FROM runs WHERE {condition}"  # noqa: S608
        args: tuple[str, ...] = ()
        if deployment is not None:
            sql, args = sql + " AND deployment = ?", (deployment,)
        with self._db.read() as conn:
            return [run_of(r) for r in conn.execute(sql + " ORDER BY seq", args).fetchall()]

    def _now(self) -> str:
        return to_text(self._clock())
