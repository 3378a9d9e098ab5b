"""The fake Messages API fails as the real one does, and the real SDK reacts as it would: 429
and 529 retried after the wait the server asked for, an ``error`` event mid-stream raised and
not retried, a wrong key refused, a broken conversation refused with a 400 saying why."""

from __future__ import annotations

import threading
from typing import Any

import anthropic
import pytest

from tests.support.conftest import API_KEY
from tests.support.fake_anthropic import sdk_client
from tests.support.fake_anthropic_script import Gate, Turn

MODEL = "claude-sonnet-5-5"
HI = [{"role": "user", "content": "hi"}]
BASH = [{"type": "bash_20250124", "name": "bash"}]
MARK = {"type": "ephemeral"}


def ask(client: Any, **kw: Any) -> Any:
    kw.setdefault("messages", HI)
    return client.messages.create(model=MODEL, max_tokens=1024, **kw)


def statuses(fake: Any) -> list[int]:
    return [r.status for r in fake.requests]


@pytest.mark.parametrize(
    ("turn", "waited"),
    [
        (Turn.rate_limited(retry_after=3), 3.0),
        (Turn.rate_limited(retry_after=3, retry_after_ms=1250), 1.25),  # the ms header wins
    ],
    ids=["retry-after", "retry-after-ms"],
)
def test_a_429_is_retried_after_the_wait_it_asks_for(fake_api, client, retry_clock, turn, waited):
    fake_api.enqueue(turn, "made it")
    assert ask(client).content[0].text == "made it"
    assert statuses(fake_api) == [429, 200] and retry_clock.sleeps == [waited]
    assert [r.header("x-stainless-retry-count") for r in fake_api.requests] == ["0", "1"]


def test_a_429_carries_the_real_error_shape(fake_api, test_ca):
    fake_api.enqueue(Turn.rate_limited(retry_after=7, retry_after_ms=7000))
    c = sdk_client(fake_api.url, test_ca, api_key=API_KEY, max_retries=0)
    with c, pytest.raises(anthropic.RateLimitError) as info:
        ask(c)
    err = info.value
    assert err.status_code == 429 and err.body["error"]["type"] == "rate_limit_error"
    assert err.response.headers["retry-after"] == "7"
    assert err.response.headers["retry-after-ms"] == "7000"
    assert err.request_id == fake_api.requests[0].request_id


@pytest.mark.parametrize(
    ("failure", "status"), [(Turn.overloaded(), 529), (Turn.server_error(), 500)]
)
def test_overloaded_and_server_errors_are_retried_with_backoff(
    fake_api, client, retry_clock, failure, status
):
    fake_api.enqueue(failure, failure, "third time")
    assert ask(client).content[0].text == "third time"
    assert statuses(fake_api) == [status, status, 200]
    assert len(retry_clock.sleeps) == 2 and all(0 < s <= 8 for s in retry_clock.sleeps)


def test_overloaded_three_times_gives_up_with_the_overloaded_error(fake_api, client, retry_clock):
    fake_api.enqueue(*[Turn.overloaded()] * 3)
    with pytest.raises(anthropic.OverloadedError) as info:
        ask(client)
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == "overloaded_error"
    assert statuses(fake_api) == [529] * 3


def test_an_error_event_mid_stream_raises_and_is_not_retried(fake_api, client, retry_clock):
    fake_api.enqueue(Turn.text("I was saying something long").failing(after=4), "never used")
    got: list[str] = []
    stream = client.messages.stream(model=MODEL, max_tokens=1024, messages=HI)
    with pytest.raises(anthropic.APIStatusError) as info, stream as s:
        got.extend(s.text_stream)
    assert info.value.status_code == 200  # the stream had started
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert got == ["I was sayi"]  # what arrived before the error event
    assert len(fake_api.requests) == 1 and fake_api.pending == 1 and retry_clock.sleeps == []


def test_a_connection_cut_mid_stream_fails_the_stream(fake_api, client):
    fake_api.enqueue(Turn.text("cut short").dropped(after=3), "never used")
    stream = client.messages.stream(model=MODEL, max_tokens=1024, messages=HI)
    # httpx2.RemoteProtocolError: the SDK does not wrap a failure of the body
    with pytest.raises(Exception, match="incomplete chunked read"), stream as s:
        s.get_final_message()
    assert len(fake_api.requests) == 1 and fake_api.pending == 1


def test_a_connection_cut_before_the_answer_is_retried(fake_api, client, retry_clock):
    fake_api.enqueue(Turn.text("lost").dropped(after=0), "second try")
    assert ask(client).content[0].text == "second try"
    assert len(fake_api.requests) == 2 and len(retry_clock.sleeps) == 1


def test_a_gated_stream_waits_for_the_test(fake_api, client):
    gate = Gate(after=3)
    fake_api.enqueue(Turn.text("held, then released").gated(gate))
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(ask_streamed(client)))
    worker.start()
    assert gate.reached.wait(10)
    assert done == [] and fake_api.requests[0].status == 200
    gate.release()
    worker.join(10)
    assert done == ["held, then released"]


def ask_streamed(client: Any) -> str:
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=HI) as s:
        return str(s.get_final_message().content[0].text)


def test_a_wrong_key_is_refused_and_uses_no_turn(fake_api, test_ca):
    fake_api.enqueue("for the right key")
    wrong = sdk_client(fake_api.url, test_ca, api_key="sk-ant-wrong")
    with wrong, pytest.raises(anthropic.AuthenticationError) as info:
        ask(wrong)
    assert info.value.body["error"] == {
        "type": "authentication_error",
        "message": "invalid bearer token",
    }
    with sdk_client(fake_api.url, test_ca, api_key=API_KEY) as c:
        assert ask(c).content[0].text == "for the right key"
    assert fake_api.keys_seen() == ["sk-ant-wrong", API_KEY] and statuses(fake_api) == [401, 200]


def test_an_empty_script_fails_loudly_and_at_once(fake_api, client, retry_clock):
    with pytest.raises(anthropic.InternalServerError) as info:
        ask(client)
    assert info.value.body["error"]["type"] == "api_error"
    assert "no scripted turn left" in info.value.body["error"]["message"]
    assert len(fake_api.requests) == 1 and retry_clock.sleeps == []


def test_a_tool_loop_answers_the_ids_the_fake_issued(fake_api, client):
    fake_api.enqueue(Turn.tool("bash", {"command": "ls"}), "two files")
    first = ask(client, tools=BASH)
    [tool] = first.content
    result = {"type": "tool_result", "tool_use_id": tool.id, "content": "a\nb", "is_error": False}
    convo = [
        *HI,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    assert ask(client, tools=BASH, messages=convo).content[0].text == "two files"
    assert fake_api.issued == {tool.id: "bash"}
    assert fake_api.requests[1].body["messages"][2]["content"][0]["tool_use_id"] == tool.id


ISSUED = "toolu_01PzWq3ahRyxbBPfNFSwuDE"
TOOL_TURN = {
    "role": "assistant",
    "content": [{"type": "tool_use", "id": ISSUED, "name": "bash", "input": {}}],
}


def answer(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [*HI, TOOL_TURN, {"role": "user", "content": list(blocks)}]


def result(tool_id: str = ISSUED) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "ok"}


TEXT = {"type": "text", "text": "and also"}
MARKED = {"type": "text", "text": "x", "cache_control": MARK}
FORGED = {  # thinking must come back with the signature the API gave it
    "role": "assistant",
    "content": [{"type": "thinking", "thinking": "hmm", "signature": "forged"}, TEXT],
}


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        (
            {"messages": answer(result("toolu_01other"))},
            "unexpected `tool_use_id` found in `tool_result`",
        ),
        ({"messages": answer(TEXT, result())}, "`tool_result` blocks must come first"),
        ({"messages": answer(TEXT)}, "`tool_use` ids were found without `tool_result` blocks"),
        ({"messages": [*HI, *HI]}, 'found multiple "user" roles in a row'),
        (
            {"messages": [{"role": "assistant", "content": "hi"}]},
            'first message must use the "user" role',
        ),
        (
            {"messages": [{"role": "user", "content": [MARKED] * 5}]},
            "A maximum of 4 blocks with cache_control",
        ),
        ({"messages": [*HI, FORGED, *HI]}, "Invalid `signature` in `thinking` block"),
    ],
    ids=[
        "unknown-id",
        "result-not-first",
        "unanswered",
        "roles",
        "first-role",
        "five-marks",
        "forged-signature",
    ],  # fmt: skip
)
def test_a_broken_conversation_is_refused_with_why(fake_api, client, kw, why):
    fake_api.enqueue(Turn.tool("bash", {}, id=ISSUED), "unused")
    ask(client, tools=BASH)  # the fake issues ISSUED
    with pytest.raises(anthropic.BadRequestError) as info:
        ask(client, tools=BASH, **kw)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert why in info.value.body["error"]["message"]
    assert (
        fake_api.pending == 1 and fake_api.requests[1].error == info.value.body["error"]["message"]
    )


def test_a_tool_result_for_an_id_the_fake_never_issued_is_refused(fake_api, client):
    fake_api.enqueue("unused")
    with pytest.raises(anthropic.BadRequestError, match="was never issued"):
        ask(client, messages=answer(result()))


def test_an_unknown_endpoint_is_not_found(fake_api, client):
    with pytest.raises(anthropic.NotFoundError, match="serves only POST /v1/messages"):
        client.models.list()
