"""Numbered schema migrations of the run history, applied in order, each in one transaction.

The database's ``PRAGMA user_version`` is the number of the last migration applied. Never edit
a migration that has shipped: add the next number. Times are UTC text of one fixed width,
``2025-03-09T07:00:00.000Z`` (see ``db.to_text``), so text order is time order.
"""

from __future__ import annotations

from typing import Final

Migration = tuple[int, tuple[str, ...]]

MIGRATIONS: Final[tuple[Migration, ...]] = (
    (
        1,
        (
            """CREATE TABLE deployments (
                name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
                status TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'archived')),
                paused_reason TEXT,
                note TEXT,
                job_toml TEXT NOT NULL,
                job_base TEXT NOT NULL,
                config_version INTEGER NOT NULL DEFAULT 1 CHECK (config_version >= 1),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                armed_at TEXT NOT NULL,
                last_slot TEXT,
                cron TEXT,
                timezone TEXT NOT NULL DEFAULT 'UTC',
                token_hash TEXT CHECK (token_hash IS NULL OR length(token_hash) = 64),
                webhook_secret TEXT,
                consecutive_failures INTEGER NOT NULL DEFAULT 0
            ) STRICT""",
            """CREATE TABLE runs (
                seq INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                deployment TEXT REFERENCES deployments (name),
                status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded',
                    'failed', 'timed_out', 'cancelled', 'error', 'skipped', 'missed')),
                trigger TEXT NOT NULL
                    CHECK (trigger IN ('schedule', 'manual', 'api', 'webhook')),
                slot TEXT,
                actor TEXT,
                idempotency_key TEXT,
                delivery_id TEXT,
                created_at TEXT NOT NULL,
                scheduled_at TEXT,
                started_at TEXT,
                finished_at TEXT,
                exit_code INTEGER,
                reason TEXT,
                error_class TEXT,
                config_version INTEGER,
                run_dir TEXT,
                count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1),
                missed_first TEXT,
                missed_last TEXT
            ) STRICT""",
            # At most one run per slot: two schedulers on one database can't both fire it.
            """CREATE UNIQUE INDEX runs_slot ON runs (deployment, slot)
                WHERE trigger = 'schedule' AND slot IS NOT NULL""",
            """CREATE UNIQUE INDEX runs_idempotency ON runs (deployment, idempotency_key)
                WHERE trigger = 'api' AND idempotency_key IS NOT NULL""",
            """CREATE UNIQUE INDEX runs_delivery ON runs (deployment, delivery_id)
                WHERE trigger = 'webhook' AND delivery_id IS NOT NULL""",
            # `runs list` filters: each index ends in seq (the rowid): newest first needs no sort.
            "CREATE INDEX runs_deployment ON runs (deployment, seq)",
            "CREATE INDEX runs_deployment_status ON runs (deployment, status, seq)",
            "CREATE INDEX runs_status ON runs (status, seq)",
            "CREATE INDEX runs_deployment_created ON runs (deployment, created_at)",
        ),
    ),
    (
        2,
        (
            # Which service ("host:pid") started a pending or running run: a service starting
            # up interrupts only the runs of services that are gone, never a live one's.
            "ALTER TABLE runs ADD COLUMN owner TEXT",
        ),
    ),
    (
        3,
        (
            # What a run warned about (a JSON list of strings), e.g. a secret overdue for
            # rotation; NULL when it warned about nothing.
            "ALTER TABLE runs ADD COLUMN warnings TEXT",
        ),
    ),
)

LATEST: Final = MIGRATIONS[-1][0]
