"""transcript.jsonl as a conversation (pure): messages of the user, the assistant and the
system, with tool calls and their results as foldable parts.

Both engines' shapes are read:

- the built-in loop: ``{"type": "message", "message": {"role", "content"}}``,
  ``{"type": "tool_result", "name", "input", "result": {"content", "is_error"}}``,
  ``{"type": "error"|"retry", ...}``;
- Claude Code's stream-json: ``{"type": "assistant"|"user", "message": {...}}``,
  ``{"type": "system", "subtype": ...}``, ``{"type": "result", "result": ...}``.

Everything here is text the agent or an upstream wrote: it is only ever shown as text. A line
that is not JSON, or of a shape not known here, becomes a system note with its raw text.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

PART_CHARS: Final = 100_000  # one part's text is cut here, with a note
Kind = Literal["text", "thinking", "tool_call", "tool_result"]
Role = Literal["user", "assistant", "system"]


@dataclass(frozen=True)
class Part:
    kind: Kind
    text: str
    title: str = ""  # the tool's name, for calls and results
    error: bool = False


@dataclass(frozen=True)
class Block:
    role: Role
    parts: tuple[Part, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _cut(text: str) -> str:
    if len(text) <= PART_CHARS:
        return text
    return text[:PART_CHARS] + f"\n[coatcheck: cut at {PART_CHARS} characters]"


def _text_of(content: Any) -> str:
    """A tool result's content: a string, or a list of text blocks (others as JSON)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                pieces.append(str(item.get("text", "")))
            else:
                pieces.append(json.dumps(item, ensure_ascii=False, default=str))
        return "\n".join(pieces)
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


class Conversation:
    """Reads lines one at a time; remembers tool-use ids, so results get their tool's name."""

    def __init__(self) -> None:
        self._tools: dict[str, str] = {}

    def read(self, lines: list[str]) -> list[Block]:
        return [b for line in lines for b in self.feed(line)]

    def feed(self, line: str) -> list[Block]:
        line = line.strip()
        if not line:
            return []
        try:
            event = json.loads(line)
        except ValueError:
            return [_note(line)]
        if not isinstance(event, dict):
            return [_note(line)]
        kind = event.get("type")
        message = event.get("message")
        if kind in ("message", "assistant", "user") and isinstance(message, dict):
            return self._message(message, "assistant" if kind == "assistant" else "user")
        if kind == "tool_result":
            raw = event.get("result")
            result: dict[str, Any] = raw if isinstance(raw, dict) else {}
            text = _cut(_text_of(result.get("content")))
            name, error = str(event.get("name") or "tool"), bool(result.get("is_error"))
            part = Part("tool_result", text, title=name, error=error)
            return [Block("user", (part,))]
        if kind == "result":
            words = f"result ({event.get('subtype', 'done')}): {_text_of(event.get('result'))}"
            return [_note(words, error=bool(event.get("is_error")))]
        if kind == "system":
            detail = event.get("model") or event.get("subtype") or ""
            return [_note(f"system: {event.get('subtype', '')} {detail}".rstrip())]
        if kind in ("error", "retry"):
            return [_note(f"{kind}: {_text_of(event.get('error'))}", error=kind == "error")]
        return [_note(line)]

    def _message(self, message: dict[str, Any], default: Role) -> list[Block]:
        role: Role = "assistant" if message.get("role") == "assistant" else default
        if message.get("role") == "user":
            role = "user"
        content = message.get("content")
        if isinstance(content, str):
            return [Block(role, (Part("text", _cut(content)),))]
        items = content if isinstance(content, list) else []
        parts = [self._part(item) for item in items]
        kept = tuple(p for p in parts if p is not None)
        return [Block(role, kept)] if kept else []

    def _part(self, item: Any) -> Part | None:
        if not isinstance(item, dict):
            return Part("text", _cut(json.dumps(item, ensure_ascii=False, default=str)))
        kind = item.get("type")
        if kind == "text":
            return Part("text", _cut(str(item.get("text", ""))))
        if kind == "thinking":
            return Part("thinking", _cut(str(item.get("thinking", ""))), title="thinking")
        if kind in ("tool_use", "server_tool_use"):
            name = str(item.get("name") or "tool")
            self._tools[str(item.get("id", ""))] = name
            text = json.dumps(item.get("input"), ensure_ascii=False, indent=2, default=str)
            return Part("tool_call", _cut(text), title=name)
        if kind == "tool_result":
            name = self._tools.get(str(item.get("tool_use_id", "")), "tool")
            text = _cut(_text_of(item.get("content")))
            return Part("tool_result", text, title=name, error=bool(item.get("is_error")))
        return Part("text", _cut(json.dumps(item, ensure_ascii=False, default=str)))


def _note(text: str, *, error: bool = False) -> Block:
    return Block("system", (Part("text", _cut(text), error=error),))
