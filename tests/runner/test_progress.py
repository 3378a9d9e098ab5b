"""Agent progress: one updating line on a terminal, JSON lines elsewhere; hostile lines are
never rendered as anything but text."""

from __future__ import annotations

import io
import json

import pytest

from runner.progress import CLEAR, PREFIX, ProgressFilter, render


def step(**kw: object) -> bytes:
    return PREFIX + json.dumps(kw).encode() + b"\n"


def feed(chunks: list[bytes], *, tty: bool) -> bytes:
    out = io.BytesIO()
    f = ProgressFilter(out, tty=tty, clock=iter([0.0, 12.0, 13.0, 14.0, 15.0]).__next__)
    for chunk in chunks:
        f.write(chunk)
    f.close()
    return out.getvalue()


def test_on_a_terminal_progress_is_one_updating_line_between_ordinary_output():
    data = b"hello\n" + step(turn=1, step="model", tokens=0) + step(turn=1, step="tool",
            tool="bash", tokens=1234) + b"tool said hi\n"  # fmt: skip
    got = feed([data[:9], data[9:30], data[30:]], tty=True)
    assert got == (
        b"hello\n" + CLEAR + "agent: turn 1 · model · 0 tokens · 12s".encode()
        + CLEAR + "agent: turn 1 · bash · 1,234 tokens · 13s".encode()
        + CLEAR + b"tool said hi\n"
    )  # fmt: skip


def test_off_a_terminal_progress_passes_as_json_lines():
    data = b"out\n" + step(turn=2, step="done", tokens=5)
    assert feed([data], tty=False) == data


@pytest.mark.parametrize(
    "obj",
    [{"turn": "1", "tokens": 0}, {"turn": True, "tokens": 0}, [1, 2], {"turn": 1}],
    ids=["string-turn", "bool-turn", "not-an-object", "no-tokens"],
)
def test_malformed_progress_is_not_rendered(obj):
    assert render(obj, 0.0) is None


def test_hostile_names_cannot_reach_the_terminal_as_control_codes():
    line = render({"turn": 1, "tokens": 2, "tool": "\x1b]0;pwned\x07bash\r\n"}, 1.0)
    assert line == "agent: turn 1 · 0pwnedbash · 2 tokens · 1s"
