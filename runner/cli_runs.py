"""``coatcheck runs``: the run history, read from ``$COATCHECK_HOME/history.sqlite3`` directly
(no service needed): ``list``, ``show`` and ``logs``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from core.errors import UsageError
from core.home import coatcheck_home
from core.runids import RUN_ID
from runner.history import History, Run, history_path
from runner.history.db import to_text
from runner.history.errors import RunNotFound
from runner.history.runrow import STATUSES
from runner.rundir import AUDIT_JSONL, OUTPUT_LOG, RUN_JSON

COLUMNS = (
    "id", "deployment", "status", "trigger", "scheduled_at", "started_at", "finished_at",
    "exit_code", "reason",
)  # fmt: skip
RECORD_KEYS = ("job", "kind", "image", "duration_s", "turns", "usage", "error", "output_capped")
RUN_FILES = {
    "run_json": RUN_JSON, "output_log": OUTPUT_LOG, "audit_jsonl": AUDIT_JSONL,
    "transcript_jsonl": "transcript.jsonl", "report_md": "report.md", "out": "out",
}  # fmt: skip
_HOW_TO_LIST = "`coatcheck runs list` shows the runs"


@click.group("runs")
def runs_group() -> None:
    """The run history: every run, its trigger, how it ended, and where its logs are.

    Times are UTC. Skipped and missed slots in a row are one line with a count.
    """


@runs_group.command("list")
@click.option("--deployment", metavar="NAME", help="Only the runs of this deployment.")
@click.option("--status", type=click.Choice(STATUSES), help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--before", metavar="RUN", help="Continue a listing after this run.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def list_command(
    deployment: str | None, status: Any, limit: int, before: str | None, as_json: bool
) -> None:
    """The newest runs first."""
    history = _open()
    runs: list[Run] = []
    if history is not None:
        with history:
            runs = history.runs.list_runs(deployment, status, limit=limit, before=before)
    elif before is not None:
        raise RunNotFound(f"no run {before!r}; {_HOW_TO_LIST}")
    if as_json:
        rows = [{**row_json(r, COLUMNS), "count": r.count, "warnings": list(r.warnings or ())}
                for r in runs]  # fmt: skip
        click.echo(json.dumps(rows, indent=2))
        return
    if not runs:
        click.echo("no runs yet", err=True)
        return
    table = [COLUMNS, *(_cells(r) for r in runs)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@runs_group.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def show_command(run: str, as_json: bool) -> None:
    """One run: its history row, what its run.json says (turns, usage, error) and its files.
    RUN is a run id or a unique prefix of one."""
    found, run_dir = _find(run)
    shown: dict[str, Any] = {"id": run} if found is None else row_json(found, _ALL_FIELDS)
    record = _read_record(run_dir)
    if record is not None:
        shown.update({k: record[k] for k in RECORD_KEYS if k in record})
        if found is None:
            shown.update({k: record.get(k) for k in ("status", "exit_code")})
        if not shown.get("warnings") and isinstance(record.get("warnings"), list):
            shown["warnings"] = record["warnings"]
    shown["warnings"] = list(shown.get("warnings") or ())
    shown["paths"] = _paths(run_dir)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        if key == "paths":
            for name, path in value.items():
                click.echo(f"{name + ':':<17} {path}")
        elif key == "warnings":
            for warning in value:
                click.echo(f"{'warning:':<17} {warning}")
        elif value is not None:
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            click.echo(f"{key + ':':<17} {text}")


@runs_group.command("logs")
@click.argument("run")
@click.option("--audit", is_flag=True, help="The proxy's audit lines (JSON) instead.")
def logs_command(run: str, audit: bool) -> None:
    """Print a run's output.log (what the sandbox printed), or with --audit its audit.jsonl
    (each request the proxy saw: host, decision, reason)."""
    found, run_dir = _find(run)
    name = AUDIT_JSONL if audit else OUTPUT_LOG
    path = None if run_dir is None else run_dir / name
    if path is None or not path.is_file():
        why = f" ({found.status}, {found.reason})" if found and found.reason else ""
        run_id = found.id if found else run
        raise UsageError(
            f"run {run_id}{why} has no {name}: it never started, or its directory was "
            f"removed; `coatcheck runs show {run_id}` shows what is left"
        )
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            click.echo(chunk, nl=False)  # bytes go to stdout as they are


_ALL_FIELDS = tuple(f for f in Run.__dataclass_fields__ if f != "seq")


def row_json(run: Run, keys: tuple[str, ...]) -> dict[str, Any]:
    """``keys`` of a run, as JSON values (times as the stored UTC text)."""
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(run, key)
        out[key] = to_text(value) if isinstance(value, datetime) else value
    return out


def _cells(run: Run) -> tuple[str, ...]:
    values = row_json(run, COLUMNS)
    cells = []
    for key in COLUMNS:
        value = values[key]
        text = "-" if value is None else str(value)
        if key.endswith("_at") and value is not None:
            text = text[:19].replace("T", " ")
        if key == "reason" and run.count > 1:
            text = f"{text} (x{run.count})"
        cells.append(text)
    return tuple(cells)


def _open() -> History | None:
    path = history_path(coatcheck_home())
    return History.open(path) if path.exists() else None


def _find(run: str) -> tuple[Run | None, Path | None]:
    """The history row of ``run`` and its directory; a run directory alone (a run made before
    the history existed) will do."""
    runs_root = coatcheck_home() / "runs"
    history = _open()
    if history is not None:
        with history:
            try:
                found = history.runs.get_run(run)
            except RunNotFound as exc:
                missing = exc
            else:
                run_dir = Path(found.run_dir) if found.run_dir else runs_root / found.id
                return found, run_dir if run_dir.is_dir() else None
    else:
        missing = RunNotFound(f"no run {run!r}; {_HOW_TO_LIST}")
    if RUN_ID.fullmatch(run) and (runs_root / run).is_dir():
        return None, runs_root / run
    raise missing


def _read_record(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    try:
        data = json.loads((run_dir / RUN_JSON).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _paths(run_dir: Path | None) -> dict[str, str]:
    if run_dir is None:
        return {}
    found = {"run_dir": str(run_dir)}
    found.update({k: str(run_dir / n) for k, n in RUN_FILES.items() if (run_dir / n).exists()})
    return found
