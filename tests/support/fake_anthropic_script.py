"""What the fake Messages API answers: scripted turns, and their wire form (JSON or SSE).

A test scripts the model's side of a conversation, one ``Turn`` per request, the way llm's
``MockModel.enqueue()`` does::

    fake.enqueue(Turn.tool("bash", {"command": "ls"}), Turn.text("done"))
    fake.enqueue(Turn.rate_limited(retry_after_ms=5), Turn.text("hi"))
    fake.enqueue(Turn.of(Thinking("hmm"), Text("hi"), stop_reason="max_tokens"))
    fake.enqueue(Turn.text("partial").failing(after=4))    # an `error` event mid-stream
    fake.enqueue(Turn.text("partial").dropped(after=3))    # the connection cut mid-stream

Nothing here does I/O: ``stream_events`` and ``message_json`` turn a ``Turn`` into the exact
events (``event:`` + JSON ``data:`` lines) or JSON body the real API sends.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

StopReason = Literal[
    "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
    "model_context_window_exceeded",
]  # fmt: skip
ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "rate_limit_error": 429,
    "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}  # fmt: skip
GATE_S = 60.0  # how long a gated stream waits for the test before it gives up and cuts


def count_tokens(text: str) -> int:
    """The fake's tokenizer: about four characters a token, at least one. Deterministic."""
    return max(1, (len(text) + 3) // 4)


def cut(text: str, points: tuple[int, ...] | None, step: int) -> list[str]:
    """``text`` in pieces ending at ``points`` (default: every ``step`` characters)."""
    if points is None:
        points = tuple(range(step, len(text), step))
    edges = [0, *sorted({p for p in points if 0 < p < len(text)}), len(text)]
    return [text[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


@dataclass(frozen=True)
class Text:
    text: str
    cuts: tuple[int, ...] | None = None  # where text_delta pieces end (default: every 10)


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: Mapping[str, Any]
    id: str | None = None  # the fake issues a `toolu_...` id when the turn is enqueued
    cuts: tuple[int, ...] | None = None  # split points in the input's JSON text (default: 7s)
    ensure_ascii: bool = False  # \uXXXX escapes instead of raw UTF-8 in the JSON text

    def json_text(self) -> str:
        return json.dumps(self.input, ensure_ascii=self.ensure_ascii)


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str = "EqQBCkYIBxgCKkDfakeSignatureForTests"
    cuts: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RedactedThinking:
    data: str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"


Block = Text | ToolUse | Thinking | RedactedThinking


@dataclass(frozen=True)
class HttpError:
    """An HTTP error answer: ``{"type":"error","error":{"type":T,"message":M}}``."""

    status: int
    type: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ErrorEvent:
    after: int  # events sent before the `error` event (then the stream ends)
    type: str = "overloaded_error"
    message: str = "Overloaded"


@dataclass(eq=False)
class Gate:
    """A point in a stream where the fake stops until the test says go: an event, no clock.
    ``reached`` is set when the fake gets there; it goes on once ``release()`` is called."""

    after: int  # events sent before the fake waits
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Turn:
    """One scripted answer. Streaming-only knobs (gate, drop, error event, write size) act on
    a non-streaming request as the real API would fail there: no answer, or that HTTP error."""

    blocks: tuple[Block, ...] = ()
    stop_reason: StopReason = "end_turn"
    stop_sequence: str | None = None
    error: HttpError | None = None  # answer this instead of a message
    error_event: ErrorEvent | None = None
    drop_after: int | None = None  # cut the connection after this many events
    gate: Gate | None = None
    write_size: int | None = None  # send the SSE bytes in pieces of this many bytes
    ping_at: tuple[int, ...] = (2,)  # where `ping` events go in the event list

    @classmethod
    def text(cls, text: str, *, stop_reason: StopReason = "end_turn") -> Turn:
        return cls((Text(text),), stop_reason=stop_reason)

    @classmethod
    def tool(
        cls, name: str, input: Mapping[str, Any], *, text: str | None = None, id: str | None = None
    ) -> Turn:
        lead = (Text(text),) if text else ()
        return cls((*lead, ToolUse(name, input, id=id)), stop_reason="tool_use")

    @classmethod
    def of(cls, *blocks: Block, stop_reason: StopReason = "end_turn") -> Turn:
        return cls(tuple(blocks), stop_reason=stop_reason)

    @classmethod
    def http_error(
        cls, status: int, type: str, message: str, headers: Mapping[str, str] | None = None
    ) -> Turn:
        return cls(error=HttpError(status, type, message, tuple((headers or {}).items())))

    @classmethod
    def rate_limited(cls, *, retry_after: int = 1, retry_after_ms: int | None = None) -> Turn:
        headers = {"retry-after": str(retry_after)}
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        msg = "Number of request tokens has exceeded your per-minute rate limit"
        return cls.http_error(429, "rate_limit_error", msg, headers)

    @classmethod
    def overloaded(cls) -> Turn:
        return cls.http_error(529, "overloaded_error", "Overloaded")

    @classmethod
    def server_error(cls) -> Turn:
        return cls.http_error(500, "api_error", "Internal server error")

    def dropped(self, after: int) -> Turn:
        return replace(self, drop_after=after)

    def failing(
        self, after: int, type: str = "overloaded_error", message: str = "Overloaded"
    ) -> Turn:
        return replace(self, error_event=ErrorEvent(after, type, message))

    def gated(self, gate: Gate) -> Turn:
        return replace(self, gate=gate)

    def in_pieces(self, write_size: int) -> Turn:
        return replace(self, write_size=write_size)

    def tool_ids(self) -> list[str]:
        return [b.id for b in self.blocks if isinstance(b, ToolUse) and b.id]

    def output_tokens(self) -> int:
        return max(1, sum(count_tokens(_block_text(b)) for b in self.blocks))


def _block_text(block: Block) -> str:
    match block:
        case Text(text=t) | Thinking(thinking=t):
            return t
        case ToolUse():
            return block.json_text()
        case RedactedThinking(data=d):
            return d


def block_json(block: Block) -> dict[str, Any]:
    """A content block as in a non-streaming answer."""
    match block:
        case Text(text=t):
            return {"type": "text", "text": t}
        case ToolUse(id=i, name=n):
            return {"type": "tool_use", "id": i, "name": n, "input": json.loads(block.json_text())}
        case Thinking(thinking=t, signature=s):
            return {"type": "thinking", "thinking": t, "signature": s}
        case RedactedThinking(data=d):
            return {"type": "redacted_thinking", "data": d}


def _block_events(index: int, block: Block) -> list[dict[str, Any]]:
    start: dict[str, Any]
    deltas: list[dict[str, Any]]
    match block:
        case Text(text=t, cuts=c):
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in cut(t, c, 10)]
        case ToolUse(id=i, name=n, cuts=c):
            start = {"type": "tool_use", "id": i, "name": n, "input": {}}
            pieces = cut(block.json_text(), c, 7)
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        case Thinking(thinking=t, signature=s, cuts=c):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in cut(t, c, 10)]
            deltas.append({"type": "signature_delta", "signature": s})
        case RedactedThinking(data=d):
            start, deltas = {"type": "redacted_thinking", "data": d}, []
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *({"type": "content_block_delta", "index": index, "delta": d} for d in deltas),
        {"type": "content_block_stop", "index": index},
    ]


def usage_json(usage: Mapping[str, int], output_tokens: int) -> dict[str, Any]:
    """The ``usage`` object: ``usage`` holds input, cache_creation and cache_read counts."""
    created = usage["cache_creation_input_tokens"]
    return {
        **usage,
        "output_tokens": output_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }


def message_json(
    turn: Turn, *, message_id: str, model: str, usage: Mapping[str, int]
) -> dict[str, Any]:
    """The body of a non-streaming answer."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block_json(b) for b in turn.blocks],
        "stop_reason": turn.stop_reason,
        "stop_sequence": turn.stop_sequence,
        "usage": usage_json(usage, turn.output_tokens()),
    }


def stream_events(
    turn: Turn, *, message_id: str, model: str, usage: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Every event of a streamed answer, in the real order, pings included."""
    start = message_json(turn, message_id=message_id, model=model, usage=usage)
    start |= {"content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = usage_json(usage, 1)
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(turn.blocks):
        events += _block_events(index, block)
    delta = {"stop_reason": turn.stop_reason, "stop_sequence": turn.stop_sequence}
    events.append(
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {**usage, "output_tokens": turn.output_tokens()},
        }
    )
    events.append({"type": "message_stop"})
    for at in sorted(turn.ping_at, reverse=True):
        if 0 < at < len(events):
            events.insert(at, {"type": "ping"})
    return events


def error_json(type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": request_id}


def sse(event: Mapping[str, Any]) -> bytes:
    """One event on the wire: an ``event:`` line, a compact JSON ``data:`` line, a blank line."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
