"""The history file (runner/history/db.py, migrations.py): private, WAL, migrated once,
refused when newer than the code."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner.history.db import Database, from_text, to_text
from runner.history.errors import HistoryTooNew
from runner.history.migrations import LATEST, MIGRATIONS


def test_a_fresh_file_is_migrated_private_and_in_wal_mode(db_path: Path) -> None:
    db = Database.open(db_path)
    try:
        assert db.version() == LATEST
        with db.read() as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"deployments", "runs", "runs_slot", "runs_deployment_status"} <= tables
    finally:
        db.close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700


def test_migrations_apply_once(db_path: Path) -> None:
    Database.open(db_path).close()
    db = Database.open(db_path)  # a second open applies nothing (CREATE TABLE would fail)
    try:
        assert db.migrate() == LATEST
    finally:
        db.close()


def test_a_later_migration_applies_on_an_older_file(db_path: Path) -> None:
    Database.open(db_path).close()
    extra = (*MIGRATIONS, (LATEST + 1, ("ALTER TABLE runs ADD COLUMN extra TEXT",)))
    db = Database.open(db_path, migrations=extra)
    try:
        assert db.version() == LATEST + 1
        with db.read() as conn:
            assert "extra" in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    finally:
        db.close()


def test_a_failing_migration_leaves_the_file_as_it_was(db_path: Path) -> None:
    Database.open(db_path).close()
    bad = (*MIGRATIONS, (LATEST + 1, ("CREATE TABLE t (x)", "NOT SQL")))
    with pytest.raises(Exception, match="syntax error"):
        Database.open(db_path, migrations=bad)
    db = Database.open(db_path)
    try:
        assert db.version() == LATEST
        with db.read() as conn:
            assert (
                conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
            )
    finally:
        db.close()


def test_a_newer_file_is_refused_with_the_fix(db_path: Path) -> None:
    Database.open(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(HistoryTooNew, match="upgrade coatcheck"):
        Database.open(db_path)


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2025, 3, 9, 7, 0, tzinfo=UTC), "2025-03-09T07:00:00.000Z"),
        (datetime(2025, 3, 9, 2, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-5))),
         "2025-03-09T07:30:05.123Z"),
    ],
    ids=["utc", "offset-and-microseconds"],
)  # fmt: skip
def test_times_are_utc_text_of_one_width(when: datetime, text: str) -> None:
    assert to_text(when) == text
    assert from_text(text) == when.replace(microsecond=when.microsecond // 1000 * 1000)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_text(datetime(2025, 1, 1))  # noqa: DTZ001
