"""An agent run's progress on the terminal: one updating line on a TTY, JSON lines otherwise.

The agent (``runner/agent``) writes ``coatcheck-progress {json}`` lines to its stderr: the turn,
the step (``model``, ``tool`` or how the run ended), the tool's name, the tokens so far. On a
terminal they become one line that is rewritten in place (``turn 3 · bash · 1,234 tokens ·
12s``); elsewhere they pass on as plain JSON lines. They come from the sandbox, so they are
hostile: only known fields of the right types are shown, names are cut to safe characters, and
nothing is ever written to the terminal that could move its cursor or change its state. Other
output passes through unchanged (the run's ``output.log`` gets everything as it was).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import IO, Any

PREFIX = b"coatcheck-progress "
CLEAR = b"\r\x1b[K"
_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def render(step: Any, elapsed: float) -> str | None:
    """The progress line for one hostile progress object, or None when it isn't one."""
    if not isinstance(step, dict):
        return None
    turn, tokens = step.get("turn"), step.get("tokens")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (turn, tokens)):
        return None
    what = _NAME.sub("", str(step.get("tool") or step.get("step") or ""))[:40]
    return f"agent: turn {turn} · {what} · {tokens:,} tokens · {elapsed:.0f}s"


class ProgressFilter:
    """Wraps the terminal side of an agent run's stderr."""

    def __init__(
        self, terminal: IO[bytes], *, tty: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.terminal, self.tty, self.clock = terminal, tty, clock
        self.started = clock()
        self.pending = b""
        self.shown = False  # a progress line is on screen, without a newline after it

    def write(self, data: bytes) -> int:
        self.pending += data
        while True:
            if self.pending and not _could_be_progress(self.pending):
                cut = self.pending.find(b"\n")
                text, self.pending = (
                    (self.pending, b"")
                    if cut < 0
                    else (self.pending[: cut + 1], self.pending[cut + 1 :])
                )
                self._out(text)
                continue
            cut = self.pending.find(b"\n")
            if cut < 0:
                return len(data)
            line, self.pending = self.pending[: cut + 1], self.pending[cut + 1 :]
            self._progress(line)

    def _progress(self, line: bytes) -> None:
        if not self.tty:
            self._out(line)  # a JSON line, as the agent wrote it
            return
        try:
            step = json.loads(line[len(PREFIX) :])
        except ValueError:
            step = None
        shown = render(step, self.clock() - self.started)
        if shown is None:
            self._out(line)
            return
        self.terminal.write(CLEAR + shown.encode())
        self.terminal.flush()
        self.shown = True

    def _out(self, data: bytes) -> None:
        if self.shown:
            self.terminal.write(CLEAR)
            self.shown = False
        self.terminal.write(data)
        self.terminal.flush()

    def flush(self) -> None:
        self.terminal.flush()

    def close(self) -> None:
        if self.pending:
            self._out(self.pending)
            self.pending = b""
        if self.shown:
            self.terminal.write(b"\n")
            self.shown = False
        self.terminal.flush()


def _could_be_progress(data: bytes) -> bool:
    head = data[: len(PREFIX)]
    return PREFIX.startswith(head) if len(head) < len(PREFIX) else head == PREFIX
