"""The fake Messages API speaks the real wire: the real ``anthropic`` SDK (2.x) parses what it
sends into the messages, tool inputs, thinking blocks and usage the test scripted.

Failures, retries and the protocol checks are in ``test_fake_anthropic_errors.py``; the raw
event grammar, Claude Code's wire and the way through the proxy in ``test_fake_anthropic_wire.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.conftest import API_KEY
from tests.support.fake_anthropic_script import Text, Thinking, ToolUse, Turn

MODEL = "claude-sonnet-5-5"  # not in the SDK's deprecated list (a warning is an error here)
HI = [{"role": "user", "content": "hi"}]
AWKWARD = {"path": 'a "quoted"\\path\n', "city": "Zürich ✓", "emoji": "😀🎉", "n": [1, -2.5e-3]}


def ask(client: Any, **kw: Any) -> Any:
    kw.setdefault("messages", HI)
    return client.messages.create(model=MODEL, max_tokens=1024, **kw)


def streamed(client: Any, **kw: Any) -> Any:
    kw.setdefault("messages", HI)
    with client.messages.stream(model=MODEL, max_tokens=1024, **kw) as s:
        return s.get_final_message()


def test_a_text_reply_is_a_message(fake_api, client):
    fake_api.enqueue("Hello, world")
    msg = ask(client)
    assert [b.text for b in msg.content] == ["Hello, world"]
    assert (msg.role, msg.model, msg.stop_reason, msg.type) == (
        "assistant",
        MODEL,
        "end_turn",
        "message",
    )
    assert msg.id.startswith("msg_") and msg.usage.output_tokens > 0
    [req] = fake_api.requests
    assert msg._request_id == req.request_id and req.request_id.startswith("req_")
    assert req.body["messages"] == HI and req.body["max_tokens"] == 1024
    assert req.header("authorization") == f"Bearer {API_KEY}" and req.header("x-api-key") is None
    assert req.header("anthropic-version") == "2026-10-21"  # the SDK 2.x's, per the spec
    assert fake_api.keys_seen() == [API_KEY] and fake_api.pending == 0


def test_a_streamed_text_reply_arrives_in_its_pieces(fake_api, client):
    fake_api.enqueue(Turn.of(Text("Hello, streaming world", cuts=(3, 9))))
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=HI) as s:
        pieces = list(s.text_stream)
        msg = s.get_final_message()
    assert pieces == ["Hel", "lo, st", "reaming world"]
    assert msg.content[0].text == "Hello, streaming world" and msg.stop_reason == "end_turn"
    assert (
        fake_api.requests[0].streaming
        and msg.usage.output_tokens == Turn.text(msg.content[0].text).output_tokens()
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_tool_use_carries_its_input_and_the_id_the_fake_issued(fake_api, client, stream):
    [turn] = fake_api.enqueue(Turn.tool("bash", AWKWARD, text="Let me look."))
    msg = (streamed if stream else ask)(client, tools=[{"type": "bash_20250124", "name": "bash"}])
    assert msg.stop_reason == "tool_use"
    text, tool = msg.content
    assert text.text == "Let me look."
    assert (tool.type, tool.name, tool.input) == ("tool_use", "bash", AWKWARD)
    assert tool.id == turn.tool_ids()[0] and fake_api.issued == {tool.id: "bash"}


def test_each_character_of_the_tool_input_can_be_its_own_delta(fake_api, client):
    """Every split point at once: inside strings, inside escapes (\\n, \\", \\uXXXX), between
    multi-byte characters; and the SSE bytes in 1-byte chunks, so UTF-8 is cut too."""
    for ascii_json in (False, True):
        every = tuple(range(200))
        tool = ToolUse("edit", AWKWARD, cuts=every, ensure_ascii=ascii_json)
        assert len(tool.json_text()) < len(every)
        fake_api.enqueue(Turn.of(tool, stop_reason="tool_use").in_pieces(1))
        with client.messages.stream(model=MODEL, max_tokens=1024, messages=HI) as s:
            partial = [e.partial_json for e in s if e.type == "input_json"]
            msg = s.get_final_message()
        assert partial == list(tool.json_text())
        assert ("\\u" in tool.json_text()) == ascii_json
        assert msg.content[0].input == AWKWARD


JSON_TEXT = st.text(st.sampled_from('az "\\/\n\t\u00e9\u2028\u4e2d\U0001f600'), max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | JSON_TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(JSON_TEXT, inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tool_input=st.dictionaries(JSON_TEXT, JSON_VALUES, max_size=4),
    cuts=st.lists(st.integers(0, 300), max_size=12),
    ascii_json=st.booleans(),
    write_size=st.none() | st.integers(1, 48),
    pings=st.lists(st.integers(1, 40), max_size=3),
)
def test_any_split_of_the_tool_input_is_reassembled_by_the_sdk(
    fake_api, client, tool_input, cuts, ascii_json, write_size, pings
):
    """Split points anywhere in the JSON text, the SSE bytes in pieces of any size (cutting
    lines and UTF-8 characters), pings anywhere: the SDK rebuilds the same dict."""
    tool = ToolUse("bash", tool_input, cuts=tuple(cuts), ensure_ascii=ascii_json)
    turn = Turn(blocks=(tool,), stop_reason="tool_use", ping_at=tuple(pings))
    fake_api.enqueue(turn if write_size is None else turn.in_pieces(write_size))
    msg = streamed(client)
    assert msg.content[0].input == tool_input
    assert json.loads(tool.json_text()) == tool_input


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_thinking_comes_back_with_its_signature(fake_api, client, stream):
    fake_api.enqueue(Turn.of(Thinking("2 and 2 make 4, surely.", signature="sig-Zm9v"), Text("4")))
    thinking = {"type": "enabled", "budget_tokens": 2048}
    if stream:
        with client.messages.stream(
            model=MODEL, max_tokens=4096, messages=HI, thinking=thinking
        ) as s:
            kinds = [e.type for e in s if e.type != "text"]
            msg = s.get_final_message()
        assert kinds.index("signature") == kinds.index("content_block_stop") - 1
        assert "thinking" in kinds
    else:
        msg = client.messages.create(model=MODEL, max_tokens=4096, messages=HI, thinking=thinking)
    think, text = msg.content
    assert (think.type, think.thinking, think.signature) == (
        "thinking",
        "2 and 2 make 4, surely.",
        "sig-Zm9v",
    )
    assert text.text == "4"
    assert fake_api.requests[0].body["thinking"] == thinking


@pytest.mark.parametrize("reason", ["end_turn", "tool_use", "max_tokens", "pause_turn", "refusal"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_the_stop_reason_is_the_scripted_one(fake_api, client, reason, stream):
    fake_api.enqueue(Turn.text("...", stop_reason=reason))
    assert (streamed if stream else ask)(client).stop_reason == reason


SYSTEM = [{"type": "text", "text": "You are terse. " * 40, "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_cached_prefix_is_written_once_then_read(fake_api, client, stream):
    send = streamed if stream else ask
    fake_api.enqueue("one", "two", "three")
    first = send(client, system=SYSTEM).usage
    again = [*HI, {"role": "assistant", "content": "one"}, {"role": "user", "content": "more"}]
    second = send(client, system=SYSTEM, messages=again).usage
    uncached = send(client, system=SYSTEM[0]["text"], messages=again).usage
    assert first.cache_read_input_tokens == 0 and first.cache_creation_input_tokens > 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0 and second.input_tokens > first.input_tokens
    assert first.cache_creation.ephemeral_5m_input_tokens == first.cache_creation_input_tokens
    assert (uncached.cache_read_input_tokens, uncached.cache_creation_input_tokens) == (0, 0)
    total = uncached.input_tokens
    assert second.input_tokens + second.cache_read_input_tokens == total


def test_a_breakpoint_that_moves_down_the_conversation_reads_the_last_one(fake_api, client):
    """The agent loop's habit: a breakpoint on the newest message each turn."""
    mark = {"type": "ephemeral"}
    fake_api.enqueue("one", "two")
    turn1 = [
        {"role": "user", "content": [{"type": "text", "text": "hi " * 30, "cache_control": mark}]}
    ]
    first = ask(client, messages=turn1).usage
    turn2 = [
        {"role": "user", "content": [{"type": "text", "text": "hi " * 30}]},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "and?", "cache_control": mark}]},
    ]
    second = ask(client, messages=turn2).usage
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens > 0
    assert second.cache_creation_input_tokens > 0 and second.input_tokens == 0


def test_beta_calls_record_their_betas_with_or_without_the_beta_query(fake_api, client):
    """SDK 2.14's ``beta.messages`` posts to plain ``/v1/messages`` (its ``beta=true``
    qualifier stays internal; the spec's ``?beta=true`` is Claude Code's habit): both work."""
    fake_api.enqueue("ok", "ok too")
    betas = ["context-management-2025-06-27", "interleaved-thinking-2025-05-14"]
    create = client.beta.messages.create
    assert create(model=MODEL, max_tokens=64, messages=HI, betas=betas).content[0].text == "ok"
    msg = create(
        model=MODEL, max_tokens=64, messages=HI, betas=betas[:1], extra_query={"beta": "true"}
    )
    assert msg.content[0].text == "ok too"
    plain, query = fake_api.requests
    assert (plain.path, plain.beta, plain.betas) == ("/v1/messages", False, betas)
    assert (query.path, query.beta, query.betas) == ("/v1/messages?beta=true", True, betas[:1])
