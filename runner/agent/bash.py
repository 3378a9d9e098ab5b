"""The ``bash_20250124`` client tool: one persistent shell session per run.

The model sends ``{"command": ...}`` or ``{"restart": true}``. Commands run in one long-lived
``bash`` whose state (directory, variables, functions) carries over between calls. Each
command's output (stdout and stderr together, in order) is read up to a marker line the session
prints with the exit status; a command that runs past its timeout gets the session killed and
restarted, and the model is told. Output over the cap is cut in the middle, with the cut marked.
A failure is a ``ToolError`` (the loop answers it with ``is_error: true``), never a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 120.0
OUTPUT_CAP = 30_000  # characters returned to the model per command


class ToolError(Exception):
    """A tool call that failed; its message goes back to the model with ``is_error: true``."""


@dataclass(frozen=True)
class Result:
    output: str
    exit_code: int


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """``text`` cut in the middle when longer than ``limit``, with the cut marked."""
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut: output over {limit} ...]\n{text[-half:]}"


class BashSession:
    def __init__(
        self,
        *,
        cwd: str,
        env: Mapping[str, str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Any = time.monotonic,
    ) -> None:
        self.cwd, self.env, self.timeout_s, self.clock = (
            cwd,
            dict(env or os.environ),
            timeout_s,
            clock,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - the sandbox's own shell, by design
            ["/bin/bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,
        )

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self.proc = None

    def restart(self) -> str:
        self.close()
        self.start()
        return "the bash session was restarted"

    def call(self, tool_input: Mapping[str, Any]) -> str:
        if tool_input.get("restart"):
            return self.restart()
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("bash needs a non-empty `command` string (or `restart: true`)")
        result = self.run(command)
        text = cap(result.output)
        return text if result.exit_code == 0 else f"{text}\n[exit code {result.exit_code}]"

    def run(self, command: str) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None  # noqa: S101
        marker = "__coatcheck_done_" + secrets.token_hex(8)
        # The command reads /dev/null, not the session's own input (which carries the marker).
        script = f"{{ {command}\n}} < /dev/null\nprintf '\\n{marker} %s\\n' \"$?\"\n"
        try:
            proc.stdin.write(script.encode())
            proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            raise ToolError("the bash session had exited; it was restarted, run it again") from None
        return self._read_until(marker)

    def _read_until(self, marker: str) -> Result:
        proc = self.proc
        assert proc is not None and proc.stdout is not None  # noqa: S101
        needle = f"\n{marker} ".encode()
        buf = bytearray()
        deadline = self.clock() + self.timeout_s
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                at = buf.find(needle)
                if at >= 0 and buf.endswith(b"\n"):
                    status = buf[at + len(needle) :].strip()
                    return Result(_text(buf[:at]).rstrip("\n"), int(status or b"0"))
                left = deadline - self.clock()
                if left <= 0:
                    self.restart()
                    raise ToolError(
                        f"the command ran past its {self.timeout_s:g} s timeout and was killed; "
                        f"the session was restarted. Output so far:\n{cap(_text(buf))}"
                    )
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    self.close()
                    raise ToolError(f"the shell exited; output:\n{cap(_text(buf))}")
                buf += chunk
                if len(buf) > 64 * OUTPUT_CAP:  # keep memory bounded: head and tail suffice
                    buf[OUTPUT_CAP : len(buf) - 2 * OUTPUT_CAP] = b"\n[... output cut ...]\n"
        finally:
            sel.close()


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")
