"""The bash tool: a persistent session, a per-command timeout, capped output, restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.agent.bash import OUTPUT_CAP, BashSession, ToolError, cap


@pytest.fixture
def bash(tmp_path: Path) -> Iterator[BashSession]:
    session = BashSession(cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, timeout_s=5)
    yield session
    session.close()


def test_state_persists_between_commands(bash: BashSession) -> None:
    assert bash.call({"command": "cd /tmp && export X=kept && f() { echo fn; }"}) == ""
    assert bash.call({"command": "pwd; echo $X; f"}) == "/tmp\nkept\nfn"


def test_stdout_and_stderr_come_back_in_order_with_the_exit_code(bash: BashSession) -> None:
    out = bash.call({"command": "echo one; echo two >&2; exit_with() { return 3; }; exit_with"})
    assert out == "one\ntwo\n[exit code 3]"


def test_a_command_cannot_eat_the_session_input(bash: BashSession) -> None:
    assert bash.call({"command": "cat; echo after"}) == "after"
    assert bash.call({"command": "echo still-alive"}) == "still-alive"


def test_timeout_kills_and_restarts_the_session(tmp_path: Path) -> None:
    session = BashSession(cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, timeout_s=0.5)
    try:
        session.call({"command": "export GONE=1"})
        with pytest.raises(ToolError, match="timeout"):
            session.call({"command": "echo partial; sleep 30"})
        assert session.call({"command": "echo ${GONE:-fresh}"}) == "fresh"
    finally:
        session.close()


def test_output_over_the_cap_is_cut_and_marked(bash: BashSession) -> None:
    out = bash.call({"command": f"head -c {OUTPUT_CAP * 3} /dev/zero | tr '\\0' x; echo END"})
    assert len(out) < OUTPUT_CAP + 200
    assert "characters cut" in out and out.endswith("END")


def test_restart_and_a_shell_that_exits(bash: BashSession) -> None:
    with pytest.raises(ToolError, match="exited"):
        bash.call({"command": "exit 7"})
    assert bash.call({"command": "echo back"}) == "back"
    assert "restarted" in bash.call({"restart": True})


@pytest.mark.parametrize("bad", [{}, {"command": ""}, {"command": 3}], ids=["none", "empty", "int"])
def test_bad_input_is_a_tool_error(bash: BashSession, bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ToolError, match="command"):
        bash.call(bad)


def test_cap_keeps_short_text() -> None:
    assert cap("short") == "short"
