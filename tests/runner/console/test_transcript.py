"""transcript.jsonl as a conversation, for both engines' shapes and for junk."""

from __future__ import annotations

import json

import pytest

from runner.console.transcript import PART_CHARS, Conversation, Part


def read(*events: object) -> list[tuple[str, list[tuple[str, str, str]]]]:
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    return [(b.role, [(p.kind, p.title, p.text) for p in b.parts])
            for b in Conversation().read(lines)]  # fmt: skip


def test_builtin_loop() -> None:
    got = read(
        {"type": "message", "message": {"role": "user", "content": [{"type": "text",
                                                                        "text": "hi"}]}},
        {"type": "message", "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "tool_use", "id": "a", "name": "editor", "input": {"path": "x"}}]}},
        {"type": "tool_result", "name": "editor", "result": {"content": "ok", "is_error": True}},
        {"type": "retry", "attempt": 1, "error": "overloaded"},
    )  # fmt: skip
    assert got == [
        ("user", [("text", "", "hi")]),
        ("assistant", [("thinking", "thinking", "hmm"),
                       ("tool_call", "editor", '{\n  "path": "x"\n}')]),
        ("user", [("tool_result", "editor", "ok")]),
        ("system", [("text", "", "retry: overloaded")]),
    ]  # fmt: skip


def test_claude_code_results_get_their_tool_name() -> None:
    got = read(
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "u9",
                                                       "name": "Read", "input": {}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "u9",
                                                  "content": [{"type": "text", "text": "A"},
                                                              {"type": "image"}]}]}},
    )  # fmt: skip
    assert got[1] == ("user", [("tool_result", "Read", 'A\n{"type": "image"}')])


@pytest.mark.parametrize(
    ("line", "text"),
    [("not json <b>", "not json <b>"), ("[1, 2]", "[1, 2]"), ('{"type": "odd"}',
     '{"type": "odd"}')],
)  # fmt: skip
def test_junk_becomes_a_system_note(line: str, text: str) -> None:
    assert read(line) == [("system", [("text", "", text)])]


def test_blank_lines_are_skipped() -> None:
    assert read("", "   ") == []


def test_long_text_is_cut() -> None:
    (block,) = Conversation().read([json.dumps({"type": "message", "message": {
        "role": "user", "content": "x" * (PART_CHARS + 10)}})])  # fmt: skip
    part: Part = block.parts[0]
    assert part.text.startswith("x" * PART_CHARS) and part.text.endswith("characters]")
