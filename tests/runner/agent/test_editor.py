"""The editor tool: view, create, str_replace, insert, confined to the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.agent.bash import ToolError
from runner.agent.editor import Editor


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "a.txt").write_text("one\ntwo\nthree\n")
    return root


def test_view_numbers_lines_and_honours_a_range(ws: Path) -> None:
    ed = Editor(ws)
    assert ed.call({"command": "view", "path": str(ws / "a.txt")}).splitlines() == [
        "     1\tone", "     2\ttwo", "     3\tthree",
    ]  # fmt: skip
    assert ed.call({"command": "view", "path": "a.txt", "view_range": [2, -1]}).endswith("three")
    with pytest.raises(ToolError, match="outside the file"):
        ed.call({"command": "view", "path": "a.txt", "view_range": [2, 9]})


def test_view_of_a_directory_lists_it(ws: Path) -> None:
    (ws / "sub").mkdir()
    (ws / "sub" / "b.md").write_text("x")
    assert Editor(ws).call({"command": "view", "path": str(ws)}).split() == [
        "a.txt", "sub/", "sub/b.md",
    ]  # fmt: skip


def test_create_str_replace_and_insert(ws: Path) -> None:
    ed = Editor(ws)
    ed.call({"command": "create", "path": "out/report.txt", "file_text": "alpha\nbeta\n"})
    ed.call({"command": "str_replace", "path": "out/report.txt", "old_str": "beta", "new_str": "B"})
    ed.call({"command": "insert", "path": "out/report.txt", "insert_line": 0, "insert_text": "top"})
    ed.call({"command": "insert", "path": "out/report.txt", "insert_line": 3, "new_str": "end"})
    assert (ws / "out" / "report.txt").read_text() == "top\nalpha\nB\nend\n"


@pytest.mark.parametrize(("old", "why"), [("nothing", "no match"), ("t", "2 matches")])
def test_str_replace_must_match_exactly_once(ws: Path, old: str, why: str) -> None:
    with pytest.raises(ToolError, match=why):
        Editor(ws).call({"command": "str_replace", "path": "a.txt", "old_str": old, "new_str": ""})
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\n"


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/etc/passwd", "link/secret", "sub/../../escape.txt"],
    ids=["dot-dot", "absolute-outside", "symlink-out", "nested-dot-dot"],
)
def test_paths_outside_the_workspace_are_refused(ws: Path, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, ws / "link")
    ed = Editor(ws)
    for command in (
        {"command": "view", "path": path},
        {"command": "create", "path": path, "file_text": "x"},
    ):
        with pytest.raises(ToolError, match="outside the workspace"):
            ed.call(command)
    assert list(outside.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(
    "call",
    [
        {"command": "undo_edit", "path": "a.txt"},
        {"command": "create", "path": "n.txt"},
        {"command": "insert", "path": "a.txt", "insert_line": 9, "insert_text": "x"},
        {"command": "view", "path": "missing.txt"},
    ],
    ids=["unknown-command", "create-without-text", "insert-out-of-range", "missing-file"],
)
def test_bad_calls_are_tool_errors(ws: Path, call: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ToolError):
        Editor(ws).call(call)
