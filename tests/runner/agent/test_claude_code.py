"""The Claude Code engine's wrapper, without Claude Code: its arguments and environment, and how
its stream-json becomes the run's transcript, report, usage and exit code (hostile lines too).
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from runner.agent.claude_code import EXIT, Outcome, claude_argv, claude_env, follow

TASK = {"model": "claude-sonnet-4-5", "prompt": "fix the bug", "max_turns": 7, "max_tokens": 4096,
        "tools": ["bash", "editor", "Grep"], "system": "Be brief."}  # fmt: skip


def assistant(mid: str, *blocks: dict[str, Any], out: int = 10) -> str:
    usage = {"input_tokens": 100, "output_tokens": out, "cache_read_input_tokens": 50}
    return json.dumps({"type": "assistant", "message": {"id": mid, "role": "assistant",
                       "content": list(blocks), "usage": usage}})  # fmt: skip


def result(subtype: str = "success", text: str | None = "All fixed.", **extra: Any) -> str:
    event = {"type": "result", "subtype": subtype, "is_error": subtype != "success",
             "num_turns": 3, "total_cost_usd": 0.0123,
             "usage": {"input_tokens": 300, "output_tokens": 40}, **extra}  # fmt: skip
    if text is not None:
        event["result"] = text
    return json.dumps(event)


def run(lines: list[str], budget: int | None = None) -> tuple[Outcome, list[dict], str, bool]:
    outcome, transcript, progress = Outcome(), io.StringIO(), io.StringIO()
    finished = follow(lines, outcome, transcript, progress, budget)
    events = [json.loads(x) for x in transcript.getvalue().splitlines()]
    return outcome, events, progress.getvalue(), finished


def test_the_command_line_carries_the_job_and_no_secret() -> None:
    argv = claude_argv(TASK)
    assert argv[:3] == ["claude", "-p", "fix the bug"]
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert argv[argv.index("--allowedTools") + 1] == "Bash,Read,Edit,Write,Grep"
    assert argv[argv.index("--append-system-prompt") + 1] == "Be brief."
    env = claude_env(TASK, {"ANTHROPIC_API_KEY": "ccph_x", "COATCHECK_AGENT_TASK": "/t",
                            "COATCHECK_WORKSPACE": "/workspace"})  # fmt: skip
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["NODE_EXTRA_CA_CERTS"] == "/etc/coatcheck/ca.pem"
    assert env["HOME"].startswith("/workspace/.coatcheck/") and "COATCHECK_AGENT_TASK" not in env
    assert env["ANTHROPIC_API_KEY"] == "ccph_x"


def test_a_successful_stream_gives_transcript_report_usage_and_cost() -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
    lines = [
        json.dumps({"type": "system", "subtype": "init", "tools": ["Bash"]}),
        assistant("msg_1", {"type": "thinking", "thinking": "hm"}),
        assistant("msg_1", tool),  # the same message, one line per block: one turn
        json.dumps(
            {
                "type": "user",
                "message": {
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"}
                    ]
                },
            }
        ),
        assistant("msg_2", {"type": "text", "text": "All fixed."}),
        result(),
    ]
    outcome, events, progress, finished = run(lines)
    assert finished and outcome.status == "done" and EXIT[outcome.status] == 0
    assert [e["type"] for e in events] == ["system", "assistant", "assistant", "user",
                                           "assistant", "result"]  # fmt: skip
    assert outcome.report == "All fixed." and outcome.turns == 3 and outcome.cost_usd == 0.0123
    assert outcome.usage["input_tokens"] == 300 and outcome.usage["output_tokens"] == 40
    assert '"tool": "Bash"' in progress


@pytest.mark.parametrize(
    ("line", "status", "code"),
    [
        (
            result(
                "error_max_turns",
                None,
                errors=["Reached maximum number of turns (2)"],
                terminal_reason="max_turns",
            ),
            "max_turns",
            2,
        ),
        (result("error_during_execution", "boom"), "failed", 1),
        (
            result(
                "success",
                "API Error: 529 Overloaded.",
                is_error=True,
                terminal_reason="api_error",
                api_error_status=529,
            ),
            "api_error",
            3,
        ),
        (
            result("success", "It went wrong", is_error=True, terminal_reason="tool_error"),
            "failed",
            1,
        ),
    ],
    ids=["max-turns", "error-during-execution", "api-error", "success-subtype-but-is-error"],
)
def test_each_ending_maps_to_its_exit_code(line: str, status: str, code: int) -> None:
    outcome, _, _, _ = run([line])
    assert (outcome.status, EXIT[outcome.status]) == (status, code)
    assert outcome.report  # what went wrong, for report.md


def test_the_budget_stops_it() -> None:
    lines = [assistant(f"msg_{i}", {"type": "text", "text": "x"}) for i in range(10)]
    outcome, events, _, finished = run(lines, budget=400)
    assert not finished and outcome.status == "budget" and EXIT["budget"] == 2
    assert len(events) == 3  # 160 tokens a turn: the third reaches 400


def test_hostile_lines_are_kept_as_text_and_never_crash() -> None:
    lines = ["not json\n", "[1, 2]", '{"type": "assistant", "message": "nope"}',
             '{"type": "assistant", "message": {"id": 5, "content": [1, null],'
             ' "usage": {"input_tokens": true, "output_tokens": -5}}}',
             '{"type": "result", "subtype": 7, "num_turns": "x",'
             ' "total_cost_usd": "free"}']  # fmt: skip
    outcome, events, _, finished = run(lines)
    assert finished and outcome.status == "failed" and outcome.cost_usd is None
    assert events[0] == {"type": "text", "text": "not json"}
    assert sum(outcome.usage.values()) == 0
