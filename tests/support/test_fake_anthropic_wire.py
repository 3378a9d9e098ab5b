"""The fake Messages API's raw wire: the SSE grammar byte by byte, Claude Code's request shape
(sent by hand, without the CLI), and the way the fake is meant to be used: as
``api.anthropic.com`` behind the real proxy, which swaps the sandbox's placeholder key for
the real one."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import anthropic
import pytest

from tests.support.conftest import API_KEY
from tests.support.fake_anthropic import API_HOST, FakeAnthropic, sdk_client, trusting
from tests.support.fake_anthropic_script import RedactedThinking, Text, Thinking, ToolUse, Turn

MODEL = "claude-sonnet-5-5"
MARK = {"type": "ephemeral"}
GRAMMAR = re.compile(
    r"message_start (content_block_start (content_block_delta )*content_block_stop )*"
    r"message_delta message_stop "
)


def post(fake: FakeAnthropic, ca: Any, body: dict[str, Any], headers: dict[str, str]) -> Any:
    """One request sent by hand (the SDK's own HTTP client, nothing else of the SDK)."""
    with anthropic.DefaultHttpxClient(verify=trusting(ca), trust_env=False) as http:
        return http.post(
            f"{fake.url}/v1/messages?beta=true", headers=headers, content=json.dumps(body)
        )


def events(raw: bytes) -> list[dict[str, Any]]:
    """The SSE events of ``raw``, checking each is an ``event:`` line and a JSON ``data:`` line
    of the same type."""
    found = []
    for chunk in raw.decode().split("\n\n")[:-1]:
        event_line, data_line = chunk.split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        assert data["type"] == name
        found.append(data)
    assert raw.endswith(b"\n\n")
    return found


def sdk_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}", "anthropic-version": "2026-10-21"}


def test_the_stream_follows_the_real_event_grammar(fake_api, test_ca):
    tool = ToolUse("bash", {"command": "echo é"})
    blocks = (Thinking("hmm", signature="sig"), RedactedThinking(), Text("ok, running it"), tool)
    [turn] = fake_api.enqueue(Turn.of(*blocks, stop_reason="tool_use"))
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    r = post(fake_api, test_ca, body, sdk_headers())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["request-id"] == fake_api.requests[0].request_id
    evs = events(r.content)
    kinds = [e["type"] for e in evs]
    assert "ping" in kinds and GRAMMAR.fullmatch("".join(f"{k} " for k in kinds if k != "ping"))
    start = evs[0]["message"]
    assert (start["content"], start["stop_reason"], start["stop_sequence"]) == ([], None, None)
    assert set(start["usage"]) >= {
        "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
    }  # fmt: skip
    starts = [e["content_block"] for e in evs if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert starts[3] == {"type": "tool_use", "id": turn.tool_ids()[0], "name": "bash", "input": {}}
    per_block: dict[int, list[dict[str, Any]]] = {}
    for e in evs:
        if e["type"] == "content_block_delta":
            per_block.setdefault(e["index"], []).append(e["delta"])
    assert [d["type"] for d in per_block[0]][-2:] == ["thinking_delta", "signature_delta"]
    assert 1 not in per_block  # redacted thinking arrives whole
    assert "".join(d["partial_json"] for d in per_block[3]) == tool.json_text()
    delta = next(e for e in evs if e["type"] == "message_delta")
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == turn.output_tokens() > start["usage"]["output_tokens"]


def test_missing_max_tokens_or_version_is_refused_as_the_real_api_does(fake_api, test_ca):
    fake_api.enqueue("unused")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = post(fake_api, test_ca, body, sdk_headers())
    assert r.status_code == 400 and r.json()["error"]["message"] == "max_tokens: Field required"
    r = post(fake_api, test_ca, {**body, "max_tokens": 8}, {"x-api-key": API_KEY})
    assert r.json()["error"] == {
        "type": "invalid_request_error", "message": "anthropic-version: header is required"
    }  # fmt: skip
    r = post(fake_api, test_ca, {**body, "max_tokens": 8}, {"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert r.json()["request_id"] == r.headers["request-id"] and fake_api.pending == 1


# Claude Code 2.1's request, as the spec describes it: x-api-key, the 2023-06-01 version, a
# comma list of betas, x-app: cli, ?beta=true; thinking, context_management, several system
# blocks with cache_control, its own tool set.
CLAUDE_CODE_HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
    "context-management-2025-06-27",
    "x-app": "cli",
    "user-agent": "claude-cli/2.1.332 (external, cli)",
    "content-type": "application/json",
}
SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332;"},
        {
            "type": "text",
            "text": "You are Claude Code, Anthropic's official CLI.",
            "cache_control": MARK,
        },
        {"type": "text", "text": "You are an interactive agent. " * 60, "cache_control": MARK},
    ],
    "tools": [
        {"name": "Bash", "description": "Runs a bash command.", "input_schema": SCHEMA},
        {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}},
    ],
    "thinking": {"type": "enabled", "budget_tokens": 31999},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "metadata": {"user_id": "user_0a1b_account__session_c2d3"},
}


def claude_code_turn(fake: FakeAnthropic, ca: Any, messages: list[Any]) -> list[dict[str, Any]]:
    body = {**CLAUDE_CODE_BODY, "messages": messages}
    return events(post(fake, ca, body, CLAUDE_CODE_HEADERS).content)


def test_claude_codes_wire_shape_is_accepted(fake_api, test_ca):
    tool_turn = Turn.of(Thinking("list them"), ToolUse("Bash", {"command": "ls -a"}))
    fake_api.enqueue(replace(tool_turn, stop_reason="tool_use"), "Two files.")
    text = {"type": "text", "text": "list the files"}
    first = claude_code_turn(
        fake_api, test_ca, [{"role": "user", "content": [text | {"cache_control": MARK}]}]
    )
    thinking, tool = (e["content_block"] for e in first if e["type"] == "content_block_start")
    deltas = [e["delta"] for e in first if e["type"] == "content_block_delta"]
    thinking["thinking"] = "".join(d.get("thinking", "") for d in deltas)
    thinking["signature"] = next(d["signature"] for d in deltas if d["type"] == "signature_delta")
    tool["input"] = json.loads("".join(d.get("partial_json", "") for d in deltas))
    result = {
        "type": "tool_result",
        "tool_use_id": tool["id"],
        "content": "a\nb",
        "cache_control": MARK,
    }
    second = claude_code_turn(
        fake_api,
        test_ca,
        [
            {"role": "user", "content": [text]},
            {"role": "assistant", "content": [thinking, tool]},
            {"role": "user", "content": [result]},
        ],
    )
    assert tool["input"] == {"command": "ls -a"}
    said = [e["delta"]["text"] for e in second if e["type"] == "content_block_delta"]
    assert said == ["Two files."]
    usage = second[0]["message"]["usage"]
    assert usage["cache_read_input_tokens"] > 0 and usage["cache_creation_input_tokens"] > 0
    for req in fake_api.requests:
        assert req.status == 200 and req.beta and req.streaming
        assert req.betas == CLAUDE_CODE_HEADERS["anthropic-beta"].split(",")
        assert req.header("x-app") == "cli" and req.header("anthropic-version") == "2023-06-01"
        assert req.api_key == API_KEY and req.header("authorization") is None
        assert req.body["context_management"] == CLAUDE_CODE_BODY["context_management"]
        assert req.body["thinking"] == CLAUDE_CODE_BODY["thinking"]
    assert fake_api.keys_seen() == [API_KEY, API_KEY]


@pytest.fixture
def real_key(vault_secret) -> str:  # type: ignore[no-untyped-def]
    value = "sk-ant-api03-" + "R3alK3y9" * 10
    vault_secret("FAKE_ANTHROPIC_KEY", value, [API_HOST])
    return value


def test_through_the_proxy_the_fake_gets_the_real_key_and_the_sdk_a_clean_stream(
    proxy, test_ca, real_key
):
    """The feature's path: a placeholder ANTHROPIC_API_KEY in the sandbox, the real key at
    api.anthropic.com (the fake, by the run's ``--resolve``), a streamed tool turn back."""
    run = proxy.register(("FAKE_ANTHROPIC_KEY",), resolve={API_HOST: "127.0.0.1"})
    placeholder = run.placeholders["FAKE_ANTHROPIC_KEY"]
    tool_input = {"command": "grep -r 'é' /work", "note": 'say "hi"\n'}
    with FakeAnthropic.start(test_ca, api_key=real_key) as fake:
        fake.enqueue(Turn.tool("bash", tool_input, text="Looking.").in_pieces(5), "Done.")
        url = fake.url_as(API_HOST)
        with sdk_client(url, str(proxy.ca_cert), api_key=placeholder, proxy=run.proxy_url) as c:
            go = [{"role": "user", "content": "go"}]
            with c.messages.stream(model=MODEL, max_tokens=256, messages=go) as s:
                first = s.get_final_message()
            result = {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "x"}
            convo = [*go, {"role": "assistant", "content": first.content}]
            convo.append({"role": "user", "content": [result]})
            second = c.messages.create(model=MODEL, max_tokens=256, messages=convo)
    assert first.content[1].input == tool_input and second.content[0].text == "Done."
    assert fake.keys_seen() == [real_key, real_key]
    assert all(r.header("authorization") == f"Bearer {real_key}" for r in fake.requests)
    assert [r.header("host") for r in fake.requests] == [f"{API_HOST}:{fake.port}"] * 2
    injected = [line["secrets_injected"] for line in proxy.audit_for(run)]
    assert injected == [["FAKE_ANTHROPIC_KEY"]] * 2
    assert real_key not in proxy.audit_log.read_text()
