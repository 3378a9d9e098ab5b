"""The ``deployments`` table: a job snapshot plus how it fires, and its state.

Status: ``active``, ``paused`` (with a reason and a note), ``archived`` (final: the token is
revoked, nothing can change it, its history stays). Every update bumps ``config_version`` and
re-arms the schedule (``armed_at`` = now): slots at or before ``armed_at`` never fire, so an
edit or an unpause never backfills.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast

from runner.history.db import Database, from_text, to_text, utc_now
from runner.history.errors import DeploymentArchived, DeploymentNotFound

DeploymentStatus = Literal["active", "paused", "archived"]
STATUSES: Final = ("active", "paused", "archived")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Deployment:
    name: str
    status: DeploymentStatus
    paused_reason: str | None
    note: str | None
    job_toml: str
    job_base: str
    config_version: int
    created_at: datetime
    updated_at: datetime
    armed_at: datetime
    last_slot: datetime | None
    cron: str | None
    timezone: str
    token_hash: str | None
    webhook_secret: str | None
    consecutive_failures: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Deployment:
        times = ("created_at", "updated_at", "armed_at", "last_slot")
        values: dict[str, Any] = {
            k: (from_text(row[k]) if k in times else row[k])
            for k in row.keys()  # noqa: SIM118 - a Row has no __iter__ of its keys
        }
        return cls(**values)


class Deployments:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock

    def upsert(
        self,
        name: str,
        *,
        job_toml: str,
        job_base: str,
        cron: str | None,
        timezone: str = "UTC",
    ) -> Deployment:
        """Create ``name``, or update it: a new config version, re-armed now (no backfill);
        its status, last slot and history stay. An archived deployment can't be updated."""
        now = to_text(self._clock())
        with self._db.write() as conn:
            old = _get(conn, name)
            if old is None:
                conn.execute(
                    "INSERT INTO deployments (name, job_toml, job_base, cron, timezone, "
                    "created_at, updated_at, armed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, job_toml, job_base, cron, timezone, now, now, now),
                )
            else:
                _refuse_archived(old, "updated")
                conn.execute(
                    "UPDATE deployments SET job_toml = ?, job_base = ?, cron = ?, timezone = ?, "
                    "config_version = config_version + 1, updated_at = ?, armed_at = ? "
                    "WHERE name = ?",
                    (job_toml, job_base, cron, timezone, now, now, name),
                )
            return _must(conn, name)

    def get(self, name: str) -> Deployment:
        with self._db.read() as conn:
            return _must(conn, name)

    def find(self, name: str) -> Deployment | None:
        with self._db.read() as conn:
            return _get(conn, name)

    def list(self, status: DeploymentStatus | None = None) -> list[Deployment]:
        sql = "SELECT * FROM deployments"
        args: tuple[str, ...] = ()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        with self._db.read() as conn:
            rows = conn.execute(sql + " ORDER BY name", args).fetchall()
        return [Deployment.from_row(r) for r in rows]

    def pause(self, name: str, reason: str, note: str | None = None) -> Deployment:
        """Stop firing ``name`` (``manual``, ``error`` after repeated failures, ...)."""
        return self._change(
            name, "paused",
            "status = 'paused', paused_reason = ?, note = ?", (reason, note),
        )  # fmt: skip

    def unpause(self, name: str) -> Deployment:
        """Fire again from now on (re-armed: no backfill), failures forgotten."""
        return self._change(
            name, "unpaused",
            "status = 'active', paused_reason = NULL, note = NULL, consecutive_failures = 0, "
            "armed_at = ?", (to_text(self._clock()),),
        )  # fmt: skip

    def archive(self, name: str) -> Deployment:
        """Final: the schedule stops, the API token is revoked; the history stays readable.
        Archiving an archived deployment changes nothing."""
        with self._db.write() as conn:
            if _must(conn, name).status != "archived":
                conn.execute(
                    "UPDATE deployments SET status = 'archived', token_hash = NULL, "
                    "paused_reason = NULL, updated_at = ? WHERE name = ?",
                    (to_text(self._clock()), name),
                )
            return _must(conn, name)

    def set_token_hash(self, name: str, token_hash: str | None) -> Deployment:
        """The SHA-256 (64 lowercase hex digits) of the API token, never the token; None
        revokes it."""
        if token_hash is not None and not _SHA256_HEX.fullmatch(token_hash):
            raise ValueError("token_hash must be a SHA-256 hex digest, never the token itself")
        return self._change(name, "given a token", "token_hash = ?", (token_hash,))

    def set_webhook_secret(self, name: str, secret_name: str | None) -> Deployment:
        """The vault secret's NAME that signs this deployment's webhooks (never its value)."""
        return self._change(name, "given a webhook secret", "webhook_secret = ?", (secret_name,))

    def advance_last_slot(self, name: str, slot: datetime) -> bool:
        """Record ``slot`` as handled; only forwards. True when this call moved it (a
        compare-and-set: of two schedulers handling one slot, exactly one gets True)."""
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE deployments SET last_slot = ? "
                "WHERE name = ? AND (last_slot IS NULL OR last_slot < ?)",
                (to_text(slot), name, to_text(slot)),
            )
            return cur.rowcount == 1

    def note_result(self, name: str, *, failed: bool) -> int:
        """Count a finished run: a failure adds one, a success resets. Returns the count (the
        caller auto-pauses at its limit)."""
        with self._db.write() as conn:
            expr = "consecutive_failures + 1" if failed else "0"
            cur = conn.execute(
                f"UPDATE deployments SET consecutive_failures = {expr} WHERE name = ? "  # noqa: S608
                "RETURNING consecutive_failures",
                (name,),
            )
            row = cur.fetchone()
            if row is None:
                raise _not_found(name)
            return int(row[0])

    def _change(
        self, name: str, verb: str, assignments: str, args: tuple[object, ...]
    ) -> Deployment:
        with self._db.write() as conn:
            _refuse_archived(_must(conn, name), verb)
            conn.execute(
                f"UPDATE deployments SET {assignments}, updated_at = ? WHERE name = ?",  # noqa: S608
                (*args, to_text(self._clock()), name),
            )
            return _must(conn, name)


def _get(conn: sqlite3.Connection, name: str) -> Deployment | None:
    row = conn.execute("SELECT * FROM deployments WHERE name = ?", (name,)).fetchone()
    return None if row is None else Deployment.from_row(cast(sqlite3.Row, row))


def _must(conn: sqlite3.Connection, name: str) -> Deployment:
    found = _get(conn, name)
    if found is None:
        raise _not_found(name)
    return found


def _not_found(name: str) -> DeploymentNotFound:
    return DeploymentNotFound(
        f"no deployment named {name!r}; `coatcheck deployments list` shows them"
    )


def _refuse_archived(dep: Deployment, verb: str) -> None:
    if dep.status == "archived":
        raise DeploymentArchived(
            f"deployment {dep.name!r} is archived and can't be {verb}; archiving is final: "
            "deploy the job under a new name"
        )
