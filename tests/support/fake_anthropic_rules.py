"""What the fake Messages API checks and counts, as the real one does: pure functions.

``check(body, issued)`` returns why a request is refused (the message of a 400
``invalid_request_error``), or None. ``CacheBook.account(body)`` splits the prompt's tokens
into uncached input, cache creation and cache reads with one deterministic rule:

- the prompt is a sequence of blocks: tools, then system blocks, then each message's blocks
  (``cache_control`` itself is not part of a block's identity, so a breakpoint can move on);
- a request that marks blocks with ``cache_control`` writes the prefixes ending at each mark;
- it reads the longest prefix, ending at or before its last mark, that an earlier request
  wrote (``cache_read_input_tokens``); the blocks from there up to its last mark are written
  (``cache_creation_input_tokens``); the rest is ``input_tokens``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from tests.support.fake_anthropic_script import count_tokens

MAX_BREAKPOINTS = 4


def check(body: Any, issued: set[str], signed: set[str] | None = None) -> str | None:
    """Why the real API would refuse ``body`` with a 400, or None when it would take it.
    ``issued`` holds the ``tool_use`` ids this fake has sent; ``signed``, when given, the
    thinking signatures and redacted-thinking data it has sent (a client must hand back
    thinking blocks unchanged, as Claude Code does)."""
    if not isinstance(body, dict):
        return "There was an error parsing the body: a JSON object is required"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    return (
        _check_roles(messages)
        or _check_tool_results(messages, issued)
        or _check_thinking(messages, signed)
        or _check_marks(body)
    )


def _check_roles(messages: list[Any]) -> str | None:
    previous = None
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in m:
            return f"messages.{i}.content: Field required"
        if i == 0 and role != "user":
            return 'messages: first message must use the "user" role'
        if role == previous:
            return (
                f'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row (messages.{i})'
            )
        previous = role
    return None


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)]


def _check_tool_results(messages: list[dict[str, Any]], issued: set[str]) -> str | None:
    for i, m in enumerate(messages):
        if m["role"] != "user":
            continue
        blocks = _blocks(m)
        before = _blocks(messages[i - 1]) if i else []
        asked = [b.get("id") for b in before if b.get("type") == "tool_use"]
        answered: list[str] = []
        for j, b in enumerate(blocks):
            if b.get("type") != "tool_result":
                continue
            where = f"messages.{i}.content.{j}"
            if any(x.get("type") != "tool_result" for x in blocks[:j]):
                return f"{where}: `tool_result` blocks must come first in the user message"
            tid = b.get("tool_use_id")
            if tid not in asked:
                return (
                    f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {tid}. "
                    "Each `tool_result` block must have a corresponding `tool_use` block in "
                    "the previous message."
                )
            if tid not in issued:
                return f"{where}: `tool_use_id` {tid} was never issued by this API"
            answered.append(tid)
        missing = [t for t in asked if t not in answered]
        if missing:
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(map(str, missing))}. Each `tool_use` block "
                "must have a corresponding `tool_result` block in the next message."
            )
    return None


def _check_thinking(messages: list[dict[str, Any]], signed: set[str] | None) -> str | None:
    if signed is None:
        return None
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        for j, b in enumerate(_blocks(m)):
            kind = b.get("type")
            if kind == "thinking" and b.get("signature") not in signed:
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if kind == "redacted_thinking" and b.get("data") not in signed:
                return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
    return None


def _check_marks(body: dict[str, Any]) -> str | None:
    found = _count_marks(body)
    if found > MAX_BREAKPOINTS:
        return (
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {found}."
        )
    return None


def _count_marks(node: Any) -> int:
    if isinstance(node, list):
        return sum(_count_marks(x) for x in node)
    if not isinstance(node, dict):
        return 0
    own = 1 if isinstance(node.get("cache_control"), dict) else 0
    return own + sum(
        _count_marks(v) for k, v in node.items() if k not in ("input", "cache_control")
    )


def prompt_blocks(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, block) for every block of the prompt, in the order the cache sees them."""
    for tool in body.get("tools") or []:
        yield "tool", tool
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        yield "system", block
    for m in body["messages"]:
        for block in _blocks(m):
            yield m["role"], block


class CacheBook:
    """The prefixes earlier requests wrote to the fake's prompt cache."""

    def __init__(self) -> None:
        self._written: set[str] = set()
        self._lock = threading.Lock()

    def account(self, body: dict[str, Any]) -> dict[str, int]:
        digest = hashlib.sha256(str(body.get("model")).encode())
        hashes: list[str] = []
        tokens: list[int] = []
        marks: list[int] = []
        for i, (where, block) in enumerate(prompt_blocks(body)):
            bare = {k: v for k, v in block.items() if k != "cache_control"}
            text = json.dumps([where, bare], sort_keys=True, separators=(",", ":"))
            digest.update(text.encode())
            hashes.append(digest.copy().hexdigest())
            tokens.append(count_tokens(text))
            if isinstance(block.get("cache_control"), dict):
                marks.append(i)
        last = marks[-1] if marks else -1
        with self._lock:
            hit = max((i for i in range(last + 1) if hashes[i] in self._written), default=-1)
            self._written.update(hashes[i] for i in marks)
        read = sum(tokens[: hit + 1])
        created = sum(tokens[hit + 1 : last + 1])
        return {
            "input_tokens": sum(tokens) - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }
