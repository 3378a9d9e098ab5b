"""A run's directory on the host: ``$COATCHECK_HOME/runs/<run-id>/``, readable by its owner only.

    run.json     the run's record (``RunRecord``): written when it starts (status ``running``)
                 and replaced, atomically, when it ends
    output.log   the sandbox's stdout and stderr, interleaved as they streamed (capped)
    audit.jsonl  the proxy's audit lines of this run only

The sandbox is hostile: its output is bytes of any kind and size, kept as they came, up to a
cap (then a note); nothing in it is parsed. No secret value is written here: a record holds
secret names, the output holds what the sandbox saw (placeholders).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Final, Literal

from pydantic import BaseModel, ConfigDict

from core.home import ensure_private_dir

MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024
RUN_JSON: Final = "run.json"
OUTPUT_LOG: Final = "output.log"
AUDIT_JSONL: Final = "audit.jsonl"

Status = Literal["running", "succeeded", "failed", "timeout", "error", "stopped"]


class RunRecord(BaseModel):
    """run.json: what a run was and how it ended. Agent runs add ``turns`` and ``usage``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    job: str | None
    kind: Literal["command", "agent"]
    status: Status
    exit_code: int | None = None
    started: datetime
    finished: datetime | None = None
    duration_s: float | None = None
    image: str
    secrets: tuple[str, ...] = ()
    error: str | None = None
    output_capped: bool = False
    turns: int | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None  # Claude Code runs: what it reports the run cost
    warnings: tuple[str, ...] = ()  # e.g. a secret overdue for rotation (vault/rotation.py)


class OutputLog:
    """output.log, shared by the stdout and stderr streams; keeps the first ``cap`` bytes, then
    one note. Thread-safe: the sandbox's output is pumped from another thread."""

    def __init__(self, path: Path, *, cap: int = MAX_OUTPUT_BYTES) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._cap = cap
        self._lock = threading.Lock()
        self.written = 0
        self.capped = False

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file.closed or self.capped:
                return
            room = self._cap - self.written
            self._file.write(data[:room])
            self.written += min(len(data), room)
            if len(data) > room:
                self.capped = True
                self._file.write(
                    f"\n[coatcheck: output.log stops here, at {self._cap} bytes; the rest "
                    "went to the terminal only]\n".encode()
                )
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Tee:
    """A binary stream that writes to the terminal and to output.log. A terminal that goes
    away (a closed pipe) stops getting output; the log keeps it."""

    def __init__(self, terminal: IO[bytes], log: OutputLog) -> None:
        self._terminal: IO[bytes] | None = terminal
        self._log = log

    def write(self, data: bytes) -> int:
        self._log.write(data)
        if self._terminal is not None:
            try:
                self._terminal.write(data)
            except (OSError, ValueError):
                self._terminal = None
        return len(data)

    def flush(self) -> None:
        if self._terminal is not None:
            try:
                self._terminal.flush()
            except (OSError, ValueError):
                self._terminal = None


class RunDir:
    """The directory of one run. Build it with ``RunDir.create``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, home: Path, run_id: str) -> RunDir:
        runs = ensure_private_dir(home / "runs")
        path = runs / run_id
        path.mkdir(mode=0o700)  # a new run id: an existing directory is an error
        os.chmod(path, 0o700)
        return cls(path)

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def output_log(self) -> Path:
        return self.path / OUTPUT_LOG

    @property
    def audit_jsonl(self) -> Path:
        return self.path / AUDIT_JSONL

    def open_output(self, *, cap: int = MAX_OUTPUT_BYTES) -> OutputLog:
        return OutputLog(self.output_log, cap=cap)

    def write_record(self, record: RunRecord) -> None:
        """run.json, replaced atomically: a reader sees the old record or the new one."""
        tmp = self.path / f".{RUN_JSON}.tmp"
        data = record.model_dump_json(indent=2).encode() + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.run_json)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def read_record(self) -> RunRecord:
        return RunRecord.model_validate_json(self.run_json.read_bytes())

    def copy_audit(self, audit_log: Path, run_id: str, *, offset: int = 0) -> int:
        """Copy the lines of ``audit_log`` from ``offset`` on whose ``run_id`` is ours (from
        the start when the log is shorter: it was rotated). Returns how many."""
        count = 0
        fd = os.open(self.audit_jsonl, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            try:
                src = open(audit_log, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                return 0
            with src:
                if os.fstat(src.fileno()).st_size >= offset:
                    src.seek(offset)
                for line in src:
                    if _run_of(line) == run_id:
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        count += 1
        return count

    def output_tail(self, limit: int) -> tuple[bytes, int]:
        """The last ``limit`` bytes of output.log and how many bytes came before them."""
        try:
            with open(self.output_log, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - limit))
                return f.read(limit), max(0, size - limit)
        except FileNotFoundError:
            return b"", 0


def audit_offset(audit_log: Path) -> int:
    """Where this run's audit lines can start: the log's size before the run."""
    try:
        return audit_log.stat().st_size
    except FileNotFoundError:
        return 0


def _run_of(line: bytes) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("run_id") if isinstance(entry, dict) else None
