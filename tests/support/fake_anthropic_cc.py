"""The real Claude Code CLI (a native executable) run headless against the fake Messages API.

``COATCHECK_CLAUDE_BIN`` names the executable (default: where the ``claude-agent-sdk`` wheel was
unpacked); ``claude_bin()`` is None when it is not there, so a test can skip with the reason::

    with FakeAnthropic.start(test_ca, api_key=KEY) as fake:
        fake.enqueue(Turn.tool("Bash", {"command": "echo hi > note.txt", "description": "x"}),
                     "done")
        run = run_claude(bin, "fix the bug", cwd=work, env=claude_env(fake.url, KEY, ca, home))
        assert run.result["subtype"] == "success"

What Claude Code 2.1.332 sends (with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` nothing else):
``POST /v1/messages?beta=true`` with ``x-api-key``, ``anthropic-version: 2023-06-01``,
``anthropic-beta`` (a comma list starting ``claude-code-20250219``), ``x-app: cli``, a
``claude-cli/<version>`` user agent; a streamed body with ``thinking``, ``context_management``,
``metadata``, three system blocks (two with ``cache_control``) and its tools (Bash, Edit, Read,
Write, ...). It hands thinking blocks back with their signatures, and answers each tool_use.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLAUDE_BIN_ENV = "COATCHECK_CLAUDE_BIN"
DEFAULT_CLAUDE_BIN = "/tmp/ccwheel/claude_agent_sdk/_bundled/claude"
MODEL = "claude-sonnet-4-5"  # a model it knows: it prices usage with it (total_cost_usd)
BETA_CLAUDE_CODE = "claude-code-20250219"


def claude_bin() -> Path | None:
    """The Claude Code executable to test with, or None when there is none: the one named by
    the environment, or the pinned one from the wheel `coatcheck images build claude-code`
    cached (extracted beside it once, its digest checked)."""
    path = Path(os.environ.get(CLAUDE_BIN_ENV) or DEFAULT_CLAUDE_BIN)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    return None if os.environ.get(CLAUDE_BIN_ENV) else _from_build_cache()


def _from_build_cache() -> Path | None:
    from images import claude_code_image as cc

    pin = cc.load_pin()
    env = {k: v for k, v in os.environ.items() if k != "COATCHECK_HOME"}
    slot = cc.cache_dir(env) / "claude-code" / f"{pin.version}-{pin.wheel_sha256[:16]}"
    exe, wheel = slot / "claude", slot / pin.wheel
    if not exe.is_file() and wheel.is_file():
        try:
            cc.extract_claude(wheel, exe, pin)
        except Exception:  # noqa: BLE001 - a damaged cache: no executable to test with
            return None
    return exe if exe.is_file() and os.access(exe, os.X_OK) else None


def missing_reason() -> str:
    where = os.environ.get(CLAUDE_BIN_ENV) or DEFAULT_CLAUDE_BIN
    return (
        f"no Claude Code executable at {where}: set {CLAUDE_BIN_ENV} to the `claude` binary "
        "(claude_agent_sdk/_bundled/claude of the claude-agent-sdk wheel)"
    )


def claude_env(base_url: str, api_key: str, ca_pem: Path | str, home: Path) -> dict[str, str]:
    """The environment of a headless run against ``base_url`` (a 127.0.0.1 fake): only what it
    needs, so the host's proxies, config and credentials can't leak in."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "NODE_EXTRA_CA_CERTS": str(ca_pem),
        "IS_SANDBOX": "1",
        "LC_ALL": "C.UTF-8",
    }


@dataclass(frozen=True)
class ClaudeRun:
    returncode: int
    lines: list[dict[str, Any]]  # the stream-json output, one object a line
    stderr: str

    def of(self, type: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            x
            for x in self.lines
            if x.get("type") == type and (subtype is None or x.get("subtype") == subtype)
        ]

    @property
    def result(self) -> dict[str, Any]:
        """The final ``result`` line (there is exactly one)."""
        (line,) = self.of("result")
        return line

    def blocks(self, type: str, block: str) -> list[dict[str, Any]]:
        """The content blocks of kind ``block`` in the ``type`` (assistant/user) lines."""
        return [
            b
            for x in self.of(type)
            for b in x["message"]["content"]
            if isinstance(b, dict) and b.get("type") == block
        ]


def run_claude(
    exe: Path,
    prompt: str,
    *,
    cwd: Path,
    env: dict[str, str],
    max_turns: int = 5,
    model: str = MODEL,
    extra: tuple[str, ...] = (),
    timeout: float = 180,
) -> ClaudeRun:
    """``claude -p PROMPT`` headless, in stream-json, permissions bypassed (as in a sandbox)."""
    args = [
        str(exe), "-p", prompt, "--output-format", "stream-json", "--verbose",
        "--max-turns", str(max_turns), "--model", model,
        "--permission-mode", "bypassPermissions", *extra,
    ]  # fmt: skip
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return ClaudeRun(done.returncode, lines, done.stderr)
