"""``coatcheck runs`` (runner/cli_runs.py): list, show and logs read the history file and the
run directories directly, without a service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.errors import UsageError
from core.home import coatcheck_home
from runner.cli_runs import COLUMNS, runs_group
from runner.history import History, history_path
from runner.history.errors import RunNotFound
from runner.rundir import RunDir, RunRecord
from tests.runner.history.helpers import T0, Clock, deploy


def runs(*args: str) -> Result:
    return CliRunner().invoke(runs_group, list(args))


@pytest.fixture
def history() -> Iterator[History]:
    with History.open(history_path(coatcheck_home()), clock=Clock()) as h:
        deploy(h)
        yield h


@pytest.fixture
def agent_run(history: History) -> str:
    """A finished agent run of "nightly" with its directory: run.json, output and audit."""
    run_id = history.runs.claim_slot("nightly", T0)
    assert run_id
    run_dir = RunDir.create(coatcheck_home(), run_id)
    history.runs.mark_running(run_id, run_dir=str(run_dir.path))
    history.runs.finish(run_id, "succeeded", exit_code=0)
    run_dir.write_record(
        RunRecord(
            id=run_id, job="nightly", kind="agent", status="succeeded", exit_code=0,
            started=datetime(2025, 3, 9, 6, 0, tzinfo=UTC), image="coatcheck/sandbox:latest",
            turns=3, usage={"input_tokens": 10, "output_tokens": 5},
        )
    )  # fmt: skip
    run_dir.output_log.write_bytes(b"hello\n\xff binary\n")
    run_dir.audit_jsonl.write_text('{"run_id": "x", "host": "api.test"}\n')
    (run_dir.path / "report.md").write_text("done\n")
    return run_id


def test_list_shows_the_newest_first_with_counts(history: History, agent_run: str) -> None:
    history.runs.record_skip("nightly", "overlap", slot=T0)
    history.runs.record_skip("nightly", "overlap", slot=T0)
    plain, _ = history.runs.create_triggered(None, "manual", actor="cli")
    result = runs("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert [line.split()[0] for line in lines[1:]] == [
        plain, history.runs.list_runs("nightly")[0].id, agent_run,
    ]  # fmt: skip
    assert "overlap (x2)" in lines[2]
    assert "2025-03-09 06:00:00" in lines[3]


def test_list_json_has_exactly_the_columns_and_count(history: History, agent_run: str) -> None:
    history.runs.record_missed("nightly", 4, T0, T0)
    result = runs("list", "--json", "--deployment", "nightly", "--status", "succeeded")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert list(row) == [*COLUMNS, "count", "warnings"]
    assert row == {
        "id": agent_run, "deployment": "nightly", "status": "succeeded",
        "trigger": "schedule", "scheduled_at": "2025-03-09T06:00:00.000Z",
        "started_at": "2025-03-09T06:00:00.000Z", "finished_at": "2025-03-09T06:00:00.000Z",
        "exit_code": 0, "reason": None, "count": 1, "warnings": [],
    }  # fmt: skip
    missed = json.loads(runs("list", "--json", "--status", "missed").output)
    assert [(r["status"], r["count"]) for r in missed] == [("missed", 4)]


def test_list_pages_and_limits(history: History) -> None:
    ids = [history.runs.create_triggered("nightly", "manual")[0] for _ in range(5)]
    first = json.loads(runs("list", "--json", "--limit", "2").output)
    assert [r["id"] for r in first] == ids[:2:-1][:2]
    after = json.loads(runs("list", "--json", "--limit", "2", "--before", first[-1]["id"]).output)
    assert [r["id"] for r in after] == [ids[2], ids[1]]


def test_list_without_a_history_is_empty() -> None:
    assert json.loads(runs("list", "--json").output) == []
    assert not history_path(coatcheck_home()).exists()  # listing creates nothing


def test_show_merges_the_row_and_run_json(agent_run: str) -> None:
    result = runs("show", agent_run[:8], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    run_dir = coatcheck_home() / "runs" / agent_run
    assert (shown["id"], shown["status"], shown["slot"], shown["turns"], shown["usage"]) == (
        agent_run, "succeeded", "2025-03-09T06:00:00.000Z", 3,
        {"input_tokens": 10, "output_tokens": 5},
    )  # fmt: skip
    assert shown["paths"] == {
        "run_dir": str(run_dir), "run_json": str(run_dir / "run.json"),
        "output_log": str(run_dir / "output.log"), "audit_jsonl": str(run_dir / "audit.jsonl"),
        "report_md": str(run_dir / "report.md"),
    }  # fmt: skip
    text = runs("show", agent_run).output
    assert f"id:               {agent_run}" in text and "turns:            3" in text


def test_logs_print_the_output_or_the_audit_lines(agent_run: str) -> None:
    assert runs("logs", agent_run).stdout_bytes == b"hello\n\xff binary\n"
    assert runs("logs", agent_run, "--audit").output == '{"run_id": "x", "host": "api.test"}\n'


def test_a_run_directory_without_a_row_still_shows(tmp_path: Path) -> None:
    run_dir = RunDir.create(coatcheck_home(), "r-0123456789abcdef")
    run_dir.output_log.write_bytes(b"old\n")
    assert runs("logs", "r-0123456789abcdef").output == "old\n"
    shown = json.loads(runs("show", "r-0123456789abcdef", "--json").output)
    assert shown["paths"]["output_log"] == str(run_dir.output_log)


@pytest.mark.parametrize("command", ["show", "logs"])
def test_an_unknown_run_says_how_to_list_runs(history: History, command: str) -> None:
    result = runs(command, "r-0000000000000000")
    assert isinstance(result.exception, RunNotFound)
    assert result.exception.exit_code == 2
    assert "`coatcheck runs list`" in str(result.exception)


def test_logs_of_a_run_without_a_directory_say_why(history: History) -> None:
    skipped = history.runs.record_skip("nightly", "overlap")
    result = runs("logs", skipped)
    assert isinstance(result.exception, UsageError)
    assert "(skipped, overlap) has no output.log" in str(result.exception)
