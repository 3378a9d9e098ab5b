"""The real Claude Code CLI against the fake Messages API: what it sends, that scripted turns
drive its own tools (Bash, Read, Edit) and thinking, and the stream-json lines it prints for a
success, for running out of turns and for an API error.

Skipped, with the reason, when the executable is not there (``COATCHECK_CLAUDE_BIN``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_anthropic_cc import (
    BETA_CLAUDE_CODE,
    MODEL,
    ClaudeRun,
    claude_bin,
    claude_env,
    missing_reason,
    run_claude,
)
from tests.support.fake_anthropic_script import Text, Thinking, ToolUse, Turn

KEY = "sk-ant-api03-" + "Cl4udeC0de" * 8
EXE = claude_bin()
pytestmark = pytest.mark.skipif(EXE is None, reason=missing_reason())


@pytest.fixture
def fake(test_ca: trustme.CA) -> Iterator[FakeAnthropic]:
    with FakeAnthropic.start(test_ca, api_key=KEY) as f:
        yield f


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    (path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    return path


def claude(
    fake: FakeAnthropic, work: Path, ca_file: Path, *, max_turns: int = 6, **env: str
) -> ClaudeRun:
    assert EXE is not None
    environ = claude_env(fake.url, KEY, ca_file, work.parent / "cc-home") | env
    return run_claude(EXE, "fix the bug", cwd=work, env=environ, max_turns=max_turns)


def test_claude_code_runs_a_bash_command_and_edits_a_file(fake, work, ca_file):
    calc = str(work / "calc.py")
    fake.enqueue(
        Turn.of(
            Thinking("First a note."),
            ToolUse("Bash", {"command": "echo hi > note.txt", "description": "Write a note"}),
            stop_reason="tool_use",
        ),
        Turn.tool("Read", {"file_path": calc}),  # Edit refuses a file it has not read
        Turn.tool("Edit", {"file_path": calc, "old_string": "a - b", "new_string": "a + b"}),
        Turn.of(Thinking("Fixed."), Text("done")),
    )
    run = claude(fake, work, ca_file)

    assert run.returncode == 0, run.stderr
    assert (work / "note.txt").read_text() == "hi\n"
    assert (work / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert fake.pending == 0 and len(fake.requests) == 4
    for req in fake.requests:
        assert req.method == "POST" and req.path == "/v1/messages?beta=true" and req.beta
        assert req.status == 200, req.error
        assert req.header("x-api-key") == KEY and req.header("authorization") is None
        assert req.header("anthropic-version") == "2023-06-01"
        assert req.header("x-app") == "cli" and BETA_CLAUDE_CODE in req.betas
        assert req.header("host") == f"127.0.0.1:{fake.port}"
        body = req.body
        assert body["model"] == MODEL and req.streaming
        assert body["thinking"]["type"] == "enabled" and "context_management" in body
        assert len(body["system"]) >= 2 and any("cache_control" in b for b in body["system"])
        assert {"Bash", "Read", "Edit", "Write"} <= {t["name"] for t in body["tools"]}
    last = fake.requests[-1].body["messages"]
    assert last[1]["content"][0]["signature"] == Thinking("x").signature  # handed back

    init = run.of("system", "init")
    assert len(init) == 1 and init[0]["model"] == MODEL
    assert init[0]["apiKeySource"] == "ANTHROPIC_API_KEY" and "Bash" in init[0]["tools"]
    used = [b["name"] for b in run.blocks("assistant", "tool_use")]
    assert used == ["Bash", "Read", "Edit"]
    thought = [b["thinking"] for b in run.blocks("assistant", "thinking")]
    assert thought == ["First a note.", "Fixed."]
    results = run.blocks("user", "tool_result")
    issued = [t for req in fake.answered() if req.turn for t in req.turn.tool_ids()]
    assert [r["tool_use_id"] for r in results] == issued
    assert not any(r.get("is_error") for r in results)
    result = run.result
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "done" and result["terminal_reason"] == "completed"
    assert result["num_turns"] == 4 and result["total_cost_usd"] > 0
    assert result["usage"]["output_tokens"] > 0 and result["usage"]["cache_read_input_tokens"] > 0
    assert run.lines[-1] is result


def test_running_out_of_turns_is_error_max_turns(fake, work, ca_file):
    append = {"command": "echo hi >> note.txt", "description": "Append"}
    fake.enqueue(*(Turn.tool("Bash", append) for _ in range(3)))
    run = claude(fake, work, ca_file, max_turns=2)

    assert run.returncode == 1
    assert len(fake.requests) == 2 and fake.pending == 1
    assert (work / "note.txt").read_text() == "hi\nhi\n"
    result = run.result
    assert result["subtype"] == "error_max_turns" and result["is_error"] is True
    assert result["terminal_reason"] == "max_turns" and "result" not in result
    assert result["errors"] == ["Reached maximum number of turns (2)"]
    assert result["total_cost_usd"] > 0


def test_an_api_error_it_must_not_retry_ends_the_run_at_once(fake, work, ca_file):
    """The fake's empty script answers 500 with ``x-should-retry: false``: one request."""
    run = claude(fake, work, ca_file)

    assert run.returncode == 1 and len(fake.requests) == 1
    result = run.result
    # subtype "success" with is_error: only is_error and terminal_reason tell the truth
    assert result["subtype"] == "success" and result["is_error"] is True
    assert result["terminal_reason"] == "api_error" and result["api_error_status"] == 500
    assert result["result"].startswith("API Error: 500 no scripted turn left")
    (said,) = run.of("assistant")
    assert said["is_api_error_message"] is True and said["message"]["model"] == "<synthetic>"


def test_overloaded_is_retried_with_an_api_retry_line_each_time(fake, work, ca_file):
    fake.enqueue(*(Turn.overloaded() for _ in range(2)))
    run = claude(fake, work, ca_file, CLAUDE_CODE_MAX_RETRIES="1")

    assert run.returncode == 1 and len(fake.requests) == 2 and fake.pending == 0
    (retry,) = run.of("system", "api_retry")
    assert retry["attempt"] == 1 and retry["max_retries"] == 1
    assert retry["error_status"] == 529 and retry["error"] == "overloaded"
    result = run.result
    assert result["is_error"] is True and result["terminal_reason"] == "api_error"
    assert result["api_error_status"] == 529 and result["api_error_type"] == "overloaded_error"
