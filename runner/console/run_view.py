"""One run as the console shows it: the history row, run.json, and the run directory's files
(output tail, transcript as a conversation, audit lines, report, artifacts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.console import files
from runner.console.artifacts import Artifact, listing
from runner.console.chart import duration_s
from runner.console.transcript import Block, Conversation
from runner.history.runrow import UNFINISHED, Run

TRANSCRIPT = "transcript.jsonl"
REPORT = "report.md"


@dataclass(frozen=True)
class AuditRow:
    ts: str
    host: str
    method: str
    path: str
    status: str
    decision: str
    reason: str

    @property
    def refused(self) -> bool:
        return self.decision != "allow"


@dataclass(frozen=True)
class RunView:
    run: Run
    record: dict[str, Any]
    live: bool
    duration: float | None
    usage: dict[str, int]
    cost: float | None
    output: str
    output_end: int  # the output.log offset the page shows up to
    output_cut: bool  # the page shows only the tail
    blocks: list[Block]
    transcript_lines: int
    audit: list[AuditRow]
    artifacts: list[Artifact]
    report: str | None


def run_dir(home: Path, run: Run) -> Path:
    """Where a run's files are: ``$COATCHECK_HOME/runs/<id>`` (the id is the history's own)."""
    return home / "runs" / run.id


def record_of(directory: Path) -> dict[str, Any]:
    data, _ = files.read_capped(directory / "run.json", 1024 * 1024)
    try:
        record = json.loads(data) if data else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def is_live(run: Run, record: dict[str, Any]) -> bool:
    return run.status in UNFINISHED or record.get("status") == "running"


def _audit_row(line: str) -> AuditRow | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None

    def text(key: str) -> str:
        value = entry.get(key)
        return "" if value is None else str(value)

    return AuditRow(text("ts"), text("host"), text("method"), text("path"), text("status"),
                    text("decision") or "deny", text("reason") or text("event"))  # fmt: skip


def audit_rows(directory: Path) -> list[AuditRow]:
    rows = (_audit_row(line) for line in files.lines(directory / "audit.jsonl", 16 * 1024 * 1024))
    return [r for r in rows if r is not None][: files.AUDIT_LINES]


def load(run: Run, directory: Path) -> RunView:
    record = record_of(directory)
    live = is_live(run, record)
    data, start = files.tail(directory / "output.log")
    lines = files.lines(directory / TRANSCRIPT, files.TRANSCRIPT_CAP, complete=live)
    report, _ = files.read_capped(directory / REPORT, files.REPORT_CAP)
    usage = record.get("usage")
    cost = record.get("cost_usd")
    took = duration_s(run)
    if took is None and isinstance(record.get("duration_s"), int | float):
        took = float(record["duration_s"])
    return RunView(
        run=run, record=record, live=live, duration=took,
        usage={str(k): v for k, v in usage.items() if isinstance(v, int)}
        if isinstance(usage, dict) else {},
        cost=float(cost) if isinstance(cost, int | float) else None,
        output=data.decode("utf-8", "replace"), output_end=start + len(data),
        output_cut=start > 0, blocks=Conversation().read(lines), transcript_lines=len(lines),
        audit=audit_rows(directory), artifacts=listing(directory),
        report=report.decode("utf-8", "replace") if report else None,
    )  # fmt: skip


def run_json(run: Run) -> dict[str, Any]:
    """A history row for the JSON API."""

    def when(t: Any) -> str | None:
        return t.isoformat() if t is not None else None

    return {
        "id": run.id, "deployment": run.deployment, "status": run.status,
        "trigger": run.trigger, "actor": run.actor, "scheduled_at": when(run.scheduled_at),
        "started_at": when(run.started_at), "finished_at": when(run.finished_at),
        "duration_s": duration_s(run), "exit_code": run.exit_code, "reason": run.reason,
        "count": run.count, "config_version": run.config_version,
    }  # fmt: skip
