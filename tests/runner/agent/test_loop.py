"""The agent loop against the fake Messages API, through the real SDK: tools, stop reasons,
limits, retries, prompt caching and the transcript."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from runner.agent.bash import BashSession
from runner.agent.editor import Editor
from runner.agent.loop import AgentTask, Outcome, run_agent
from tests.support.conftest import API_KEY, client, fake_api, retry_clock  # noqa: F401
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_anthropic_script import Turn

MODEL = "claude-sonnet-5-5"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    return ws


@pytest.fixture
def tools(workspace: Path) -> Iterator[dict[str, Any]]:
    bash = BashSession(cwd=str(workspace), env={"PATH": "/usr/bin:/bin"}, timeout_s=10)
    yield {"bash": bash.call, "editor": Editor(workspace).call}
    bash.close()


def run(client: anthropic.Anthropic, tools: dict[str, Any], **kw: Any) -> tuple[Outcome, list]:  # noqa: F811
    events: list[dict[str, Any]] = []
    sleep = kw.pop("sleep", lambda _s: None)
    task = AgentTask(model=MODEL, prompt=kw.pop("prompt", "do the task"), max_turns=kw.pop(
        "max_turns", 10), max_tokens=1024, **kw)  # fmt: skip
    outcome = run_agent(client, task, tools=tools, transcript=events.append, sleep=sleep)
    return outcome, events


def test_bash_then_editor_then_done(fake_api: FakeAnthropic, client, tools, workspace):  # noqa: F811
    fake_api.enqueue(
        Turn.tool("bash", {"command": "echo from-bash > note.txt && cat note.txt"}),
        Turn.tool("str_replace_based_edit_tool",
                  {"command": "create", "path": "out/report.txt", "file_text": "all good\n"}),
        Turn.text("Done: wrote out/report.txt"),
    )  # fmt: skip
    outcome, events = run(client, tools, system="You are careful.")
    assert (outcome.status, outcome.turns, outcome.exit_code) == ("done", 3, 0)
    assert outcome.final_text == "Done: wrote out/report.txt"
    assert (workspace / "out" / "report.txt").read_text() == "all good\n"
    second = fake_api.requests[1].body["messages"][-1]["content"][0]
    assert second["type"] == "tool_result" and second["content"] == "from-bash"
    assert second["is_error"] is False
    results = [e for e in events if e["type"] == "tool_result"]
    assert [r["name"] for r in results] == ["bash", "str_replace_based_edit_tool"]
    read = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    assert sum(outcome.usage[k] for k in read) > 0 and outcome.usage["output_tokens"] > 0


def test_prompt_caching_breakpoints_and_cache_reads(fake_api, client, tools):  # noqa: F811
    fake_api.enqueue(Turn.tool("bash", {"command": "true"}), Turn.text("ok"))
    outcome, _ = run(client, tools, system="System prompt.")
    bodies = [r.body for r in fake_api.requests]
    for body in bodies:
        marks = json.dumps(body).count('"cache_control"')
        assert marks == 3  # last tool, system, newest message
        assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert outcome.usage["cache_read_input_tokens"] > 0  # the second turn re-read the first


def test_a_failing_tool_goes_back_as_an_error_and_the_loop_goes_on(fake_api, client, tools):  # noqa: F811
    fake_api.enqueue(
        Turn.tool("str_replace_based_edit_tool", {"command": "view", "path": "/etc/passwd"}),
        Turn.tool("nonexistent_tool", {}),
        Turn.text("gave up nicely"),
    )
    outcome, _ = run(client, tools)
    assert outcome.status == "done"
    for req in fake_api.requests[1:]:
        result = req.body["messages"][-1]["content"][0]
        assert result["is_error"] is True


@pytest.mark.parametrize(
    ("script", "kw", "status", "code"),
    [
        ([Turn.tool("bash", {"command": "true"})] * 3, {"max_turns": 2}, "max_turns", 2),
        ([Turn.tool("bash", {"command": "true"})] * 3, {"budget_tokens": 1}, "budget", 2),
        ([Turn.text("I can't help with that.", stop_reason="refusal")], {}, "refused", 1),
        ([Turn.overloaded()] * 5, {}, "api_error", 3),
    ],
    ids=["max-turns", "budget", "refusal", "api-fails-after-retries"],
)
def test_limits_and_failures(fake_api, client, tools, retry_clock, script, kw, status, code):  # noqa: F811
    fake_api.enqueue(*script)
    outcome, events = run(client, tools, **kw)
    assert (outcome.status, outcome.exit_code) == (status, code)
    if status == "api_error":
        assert "529" in outcome.error and events[-1]["type"] == "error"


def test_pause_turn_and_max_tokens_continue(fake_api, client, tools, retry_clock):  # noqa: F811
    fake_api.enqueue(
        Turn.text("thinking about it", stop_reason="pause_turn"),
        Turn.text("half an answ", stop_reason="max_tokens"),
        Turn.rate_limited(retry_after=2),
        Turn.text("the whole answer"),
    )
    outcome, _ = run(client, tools)
    assert (outcome.status, outcome.turns) == ("done", 3)
    assert 2.0 in retry_clock.sleeps  # retry-after honoured by the SDK
    continued = fake_api.requests[-1].body["messages"][-1]["content"][0]
    assert "cut off at max_tokens" in continued["text"]


MID_STREAM = {
    "error-event": lambda: Turn.text("partial answer").failing(after=3),
    "api-error-event": lambda: Turn.text("partial").failing(after=2, type="api_error"),
    "connection-dropped": lambda: Turn.text("partial answer").dropped(after=3),
}


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
def test_a_stream_that_fails_midway_is_retried_from_the_start(fake_api, client, tools, failure):  # noqa: F811
    waits: list[float] = []
    fake_api.enqueue(Turn.tool("bash", {"command": "true"}), failure(), failure(),
                     Turn.text("the whole answer"))  # fmt: skip
    outcome, events = run(client, tools, sleep=waits.append)
    assert (outcome.status, outcome.exit_code, outcome.turns) == ("done", 0, 2)
    assert outcome.final_text == "the whole answer" and waits == [1.0, 2.0]
    assert [e["attempt"] for e in events if e["type"] == "retry"] == [1, 2]
    # The retried request is the same turn again: the same conversation, not a continuation.
    assert fake_api.requests[-1].body["messages"] == fake_api.requests[-2].body["messages"]


@pytest.mark.parametrize("failure", MID_STREAM.values(), ids=MID_STREAM.keys())
def test_a_stream_that_keeps_failing_midway_is_reported(fake_api, client, tools, failure):  # noqa: F811
    fake_api.enqueue(Turn.tool("bash", {"command": "true"}), *(failure() for _ in range(4)))
    outcome, events = run(client, tools)
    assert (outcome.status, outcome.exit_code, outcome.turns) == ("api_error", 3, 2)
    assert events[-1]["type"] == "error" and outcome.error
    assert len(fake_api.requests) == 5  # the first turn, then the second tried four times


def test_an_error_no_retry_can_fix_is_reported_at_once(fake_api, client, tools):  # noqa: F811
    fake_api.enqueue(Turn.text("partial").failing(after=2, type="invalid_request_error",
                                                  message="bad request"))  # fmt: skip
    outcome, events = run(client, tools)
    assert (outcome.status, outcome.exit_code) == ("api_error", 3)
    assert not [e for e in events if e["type"] == "retry"] and len(fake_api.requests) == 1
