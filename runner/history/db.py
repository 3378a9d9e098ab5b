"""The history database: one SQLite file (``$COATCHECK_HOME/history.sqlite3``), mode 0600.

WAL mode (readers never block the writer), a 5 s busy timeout, foreign keys on. One
``Database`` holds one connection, shared by threads (``check_same_thread=False``) behind a
lock: every statement runs inside ``read()`` or ``write()``, which take it. Writes are
``BEGIN IMMEDIATE`` transactions, so two processes on one file take turns instead of failing
half-way. Two processes use two ``Database``s; uniqueness in the schema keeps them honest.

Times are stored as UTC text of one width (``to_text``): text order is time order.
``sqlite3`` errors are translated here into ``HistoryError`` with the fix.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from core.home import ensure_private_dir
from runner.history.errors import HistoryError, HistoryTooNew
from runner.history.migrations import MIGRATIONS, Migration

FILE_NAME: Final = "history.sqlite3"
BUSY_TIMEOUT_MS: Final = 5000
_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"


def history_path(home: Path) -> Path:
    return home / FILE_NAME


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_text(when: datetime) -> str:
    """``2025-03-09T07:00:00.000Z``: UTC, milliseconds, always this width. Naive datetimes are
    refused: a time without a zone is a bug."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"a naive datetime can't be stored: {when!r}")
    utc = when.astimezone(UTC)
    return f"{utc.strftime(_FORMAT)}.{utc.microsecond // 1000:03d}Z"


def from_text(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, f"{_FORMAT}.%fZ").replace(tzinfo=UTC)


class Database:
    """One connection to the history file; build it with ``Database.open``."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path

    @classmethod
    def open(cls, path: Path, *, migrations: tuple[Migration, ...] = MIGRATIONS) -> Database:
        ensure_private_dir(path.parent)
        if path.is_symlink():
            raise HistoryError(f"{path} is a symlink; the run history must be a plain file")
        # Created 0600 here, and only when missing: closing any descriptor of a database file
        # drops every POSIX lock this process holds on it, including those of SQLite's own
        # open connections (which then deletes a WAL that is still in use).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        conn.row_factory = sqlite3.Row
        db = cls(conn, path)
        try:
            with db._guard():
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")
            db.migrate(migrations)
        except BaseException:
            conn.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def version(self) -> int:
        with self.read() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
        """Apply the migrations this file lacks, each in its own transaction (re-checked inside
        it, so two processes opening one new file apply each once). Returns the version."""
        latest = migrations[-1][0] if migrations else 0
        for number, statements in migrations:
            with self.write() as conn:
                current = int(conn.execute("PRAGMA user_version").fetchone()[0])
                if current > latest:
                    raise HistoryTooNew(
                        f"the run history {self.path} has schema version {current}, newer than "
                        f"this coatcheck knows ({latest}); upgrade coatcheck, or move the file "
                        "away to start a new history"
                    )
                if number <= current:
                    continue
                for sql in statements:
                    conn.execute(sql)
                conn.execute(f"PRAGMA user_version = {int(number)}")
        return self.version()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads (each statement sees a consistent snapshot)."""
        with self._guard():
            yield self._conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back when
        it raises."""
        with self._guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.IntegrityError:
                raise  # a constraint: the caller decides what it means
            except sqlite3.Error as exc:
                raise _translate(exc, self.path) from exc


def _translate(exc: sqlite3.Error, path: Path) -> HistoryError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return HistoryError(
            f"the run history {path} stayed locked for {BUSY_TIMEOUT_MS // 1000} s ({text}); "
            "another coatcheck holds it: try again, or stop the other process"
        )
    return HistoryError(
        f"the run history {path} can't be used ({text}); check the file and its directory, "
        "or move the file away to start a new history"
    )
