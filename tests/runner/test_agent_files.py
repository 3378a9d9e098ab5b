"""An agent run's files on the host: the workspace going in, the artifacts coming out (hostile)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner import agent_run


def agent(workspace: Path | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        model="m", prompt="p", system=None, max_turns=3, max_tokens=100, budget_tokens=None,
        tools=("bash",), workspace=workspace,
    )  # fmt: skip


def test_the_workspace_holds_the_jobs_files_and_the_task(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "a.md").write_text("hello")
    ws = agent_run.prepare_workspace(agent(src), 60.0)
    try:
        assert (ws / "docs" / "a.md").read_text() == "hello"
        task = json.loads((ws / ".coatcheck" / "task.json").read_text())
        assert task["prompt"] == "p" and task["timeout"] == 60.0 and task["tools"] == ["bash"]
        assert (ws / "out").is_dir()
        assert (ws.parent.stat().st_mode & 0o777) == 0o700
    finally:
        agent_run.remove_workspace(ws)
    assert not ws.parent.exists()


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    out = ws / "out"
    (out / "nested").mkdir(parents=True)
    (ws / ".coatcheck").mkdir()
    (out / "report.txt").write_text("fine")
    (out / "nested" / "deep.txt").write_text("also fine")
    os.symlink("/etc/passwd", out / "passwd")
    os.symlink("/etc", out / "etc-dir")
    os.mkfifo(out / "pipe")
    with open(out / "huge.bin", "wb") as f:
        f.truncate(agent_run.MAX_BYTES + 1)  # sparse: big on paper only
    (ws / ".coatcheck" / "report.md").write_text("the report")
    (ws / ".coatcheck" / "result.json").write_text(
        json.dumps({"turns": 4, "usage": {"input_tokens": 10, "bad": "x"}, "error": ""})
    )
    return ws


def test_collect_copies_regular_files_only_and_notes_the_rest(hostile: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = agent_run.collect(hostile, run_dir)
    assert result == {"turns": 4, "usage": {"input_tokens": 10}}
    out = run_dir / "out"
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == ["COATCHECK-NOTE.txt", "nested/deep.txt", "report.txt"]
    assert not any(p.is_symlink() for p in out.rglob("*"))
    note = (out / "COATCHECK-NOTE.txt").read_text()
    for name in ("passwd", "etc-dir", "pipe", "huge.bin"):
        assert name in note
    assert (run_dir / "report.md").read_text() == "the report"
    assert not (run_dir / "transcript.jsonl").exists()  # none was written


def test_a_garbled_result_gives_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".coatcheck").mkdir(parents=True)
    (ws / ".coatcheck" / "result.json").write_text("[1, 2")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert agent_run.collect(ws, run_dir) == {}
