"""The agent loop: the model, its client tools, and the limits of a run.

One model call is one turn: it streams, its usage is added up, and its stop reason decides what
follows. ``tool_use``: every tool call runs (a failure goes back as ``is_error: true``, never
ends the loop) and the results go back first in the next user message. ``pause_turn``: the
assistant's content goes back as it is and the model continues it, in the same message.
``max_tokens``: complete tool calls still run; otherwise the model is asked to go on where it
was cut. ``end_turn`` ends the run; ``refusal`` ends it as failed. The run also ends at
``max_turns``, at ``budget_tokens`` (input, cache and output tokens over the run) and at its
deadline. Rate limits, overload, 5xx and connection errors before a response starts are retried
by the SDK, honouring ``retry-after``. A stream that fails after it started (an ``error`` event
such as ``overloaded_error``, or the connection cut) is not the SDK's to retry: the loop retries
the turn itself, from the start, up to ``MIDSTREAM_RETRIES`` times with backoff. What still
fails, or an error that no retry can fix (an invalid request), is reported as an API failure.

Prompt caching: ``cache_control`` on the last tool, on the system prompt and on the newest
message's last block (three breakpoints, under the API's four), so each turn re-reads the run's
history from the cache. Everything the model sends, the tools return and the usage of each turn
goes to ``transcript`` (one dict per event), in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.agent.bash import ToolError

CACHE = {"type": "ephemeral"}
TOOL_TYPES = {
    "bash": {"type": "bash_20250124", "name": "bash"},
    "editor": {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
}
TOOL_NAMES = {"bash": "bash", "str_replace_based_edit_tool": "editor"}
MIDSTREAM_RETRIES = 3
BACKOFF_S = (1.0, 2.0, 4.0)
TRANSIENT = {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
CONTINUE = "Your last response was cut off at max_tokens. Continue from where it stopped."


@dataclass(frozen=True)
class AgentTask:
    model: str
    prompt: str
    max_turns: int
    max_tokens: int
    system: str | None = None
    budget_tokens: int | None = None
    tools: tuple[str, ...] = ("bash", "editor")
    deadline: float | None = None  # a ``clock()`` value


@dataclass
class Outcome:
    status: str  # done | refused | max_turns | budget | timeout | api_error
    turns: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    final_text: str = ""
    error: str = ""

    @property
    def exit_code(self) -> int:
        return {"done": 0, "refused": 1, "max_turns": 2, "budget": 2, "timeout": 124}.get(
            self.status, 3
        )


Tool = Callable[[Mapping[str, Any]], str]
Transcript = Callable[[dict[str, Any]], None]
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens")  # fmt: skip


def tool_params(names: tuple[str, ...]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [dict(TOOL_TYPES[n]) for n in names]
    if params:
        params[-1]["cache_control"] = CACHE
    return params


def with_cache_on_newest(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``messages`` with one breakpoint, on the newest message's last block."""
    out = []
    for i, msg in enumerate(messages):
        blocks = [{k: v for k, v in b.items() if k != "cache_control"} for b in msg["content"]]
        if i == len(messages) - 1 and blocks:
            blocks[-1] = {**blocks[-1], "cache_control": CACHE}
        out.append({"role": msg["role"], "content": blocks})
    return out


def run_agent(
    client: Any,
    task: AgentTask,
    *,
    tools: Mapping[str, Tool],
    transcript: Transcript,
    progress: Callable[[dict[str, Any]], None] = lambda _p: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    outcome = Outcome("max_turns", usage=dict.fromkeys(USAGE_KEYS, 0))
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": task.prompt}]}
    ]
    transcript({"type": "message", "message": messages[0]})
    system = [{"type": "text", "text": task.system, "cache_control": CACHE}] if task.system else []
    paused = False
    while outcome.turns < task.max_turns:
        if task.deadline is not None and clock() >= task.deadline:
            outcome.status = "timeout"
            return outcome
        outcome.turns += 1
        progress({"turn": outcome.turns, "step": "model", "tokens": sum(outcome.usage.values())})
        try:
            message = _call_retrying(client, task, system, messages, transcript, sleep)
        except Exception as exc:  # the SDK's own retries are spent: report, don't crash
            outcome.status, outcome.error = "api_error", _describe(exc)
            transcript({"type": "error", "error": outcome.error})
            return outcome
        content = [_block(b) for b in message.content]
        assistant = {"role": "assistant", "content": content}
        if paused:  # a paused turn goes on in the same assistant message
            messages[-1] = {"role": "assistant", "content": messages[-1]["content"] + content}
        else:
            messages.append(assistant)
        paused = message.stop_reason == "pause_turn"
        usage = {k: int(getattr(message.usage, k, 0) or 0) for k in USAGE_KEYS}
        for k, v in usage.items():
            outcome.usage[k] += v
        transcript({"type": "message", "message": assistant, "stop_reason": message.stop_reason,
                    "usage": usage})  # fmt: skip
        texts = [b["text"] for b in content if b.get("type") == "text"]
        if texts:
            outcome.final_text = "\n".join(texts)
        if task.budget_tokens is not None and sum(outcome.usage.values()) >= task.budget_tokens:
            outcome.status = "budget"
            return outcome
        stop = message.stop_reason
        if stop == "refusal":
            outcome.status = "refused"
            return outcome
        if stop == "pause_turn":
            continue
        calls = [b for b in content if b.get("type") == "tool_use"]
        if calls:
            results = []
            for call in calls:
                progress({"turn": outcome.turns, "step": "tool", "tool": str(call.get("name")),
                          "tokens": sum(outcome.usage.values())})  # fmt: skip
                results.append(_run_tool(call, tools, transcript))
            messages.append({"role": "user", "content": results})
            continue
        if stop == "max_tokens":
            messages.append({"role": "user", "content": [{"type": "text", "text": CONTINUE}]})
            continue
        outcome.status = "done"  # end_turn, stop_sequence
        return outcome
    return outcome


class MidStream(Exception):
    """A stream that failed after its response started; ``__cause__`` is the SDK's error."""


def _call_retrying(client: Any, task: AgentTask, system: list[dict[str, Any]],
                   messages: list[dict[str, Any]], transcript: Transcript,
                   sleep: Callable[[float], None]) -> Any:  # fmt: skip
    for attempt in range(MIDSTREAM_RETRIES + 1):
        try:
            return _call(client, task, system, messages)
        except MidStream as exc:
            cause = exc.__cause__ or exc
            if attempt == MIDSTREAM_RETRIES or not transient(cause):
                raise cause from None
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            transcript({"type": "retry", "attempt": attempt + 1, "after_s": wait,
                        "error": _describe(cause)})  # fmt: skip
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def transient(exc: BaseException) -> bool:
    """Whether a mid-stream failure is worth another try: an error event of a transient type,
    or any failure of the connection itself (no status: the stream was cut)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        kind = error.get("type") if isinstance(error, dict) else body.get("type")
        return kind in TRANSIENT
    return getattr(exc, "status_code", None) is None


def _call(client: Any, task: AgentTask, system: list[dict[str, Any]],
          messages: list[dict[str, Any]]) -> Any:  # fmt: skip
    kwargs: dict[str, Any] = {
        "model": task.model,
        "max_tokens": task.max_tokens,
        "messages": with_cache_on_newest(messages),
        "tools": tool_params(task.tools),
    }
    if system:
        kwargs["system"] = system
    with client.messages.stream(**kwargs) as stream:  # opening it: the SDK's retries
        try:
            return stream.get_final_message()
        except Exception as exc:
            raise MidStream() from exc


def _run_tool(call: dict[str, Any], tools: Mapping[str, Tool], transcript: Transcript
              ) -> dict[str, Any]:  # fmt: skip
    name = TOOL_NAMES.get(str(call.get("name")), "")
    tool = tools.get(name)
    try:
        if tool is None:
            raise ToolError(f"no tool named {call.get('name')!r} in this run")
        text, is_error = tool(call.get("input") or {}), False
    except ToolError as exc:
        text, is_error = str(exc), True
    except Exception as exc:  # a tool bug is the model's error to see, not the loop's end
        text, is_error = f"the tool failed: {type(exc).__name__}: {exc}", True
    result = {"type": "tool_result", "tool_use_id": call["id"], "content": text,
              "is_error": is_error}  # fmt: skip
    transcript({"type": "tool_result", "name": call.get("name"), "input": call.get("input"),
                "result": result})  # fmt: skip
    return result


def _block(block: Any) -> dict[str, Any]:
    data = block.to_dict() if hasattr(block, "to_dict") else dict(block)
    return {k: v for k, v in data.items() if v is not None or k == "input"}


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", "") or exc)[:500]
    return f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {text}"
