"""Claude Code as the agent engine, inside the sandbox (``python3 -I .../cc_main.py``).

It reads the same task as the built-in loop (``$COATCHECK_AGENT_TASK``), clones ``[repo]`` if
the job has one, and runs ``claude -p`` headless with ``--output-format stream-json``: the
job's model, prompt, max turns, allowed tools and system prompt addition, non-essential traffic
off, the proxy's CA added for its TLS stack, permissions bypassed (the sandbox is the boundary).
``ANTHROPIC_API_KEY`` is the placeholder the sandbox holds: the proxy swaps in the real key.

Every stream-json line becomes a line of ``transcript.jsonl``; the final ``result`` line gives
``report.md`` (its ``result`` text) and ``result.json`` (status, turns, usage, cost, exit code),
the same files and exit codes as the built-in engine: 0 done, 1 failed, 2 a limit (turns,
tokens), 3 the model API failed. The budget (``budget_tokens``) is enforced here: when the
usage the stream reports reaches it, Claude Code is stopped. Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from runner.agent.repo import RepoError, clone

PROGRESS = "coatcheck-progress "
CA = "/etc/coatcheck/ca.pem"
USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens")  # fmt: skip
ALIASES = {"bash": ("Bash",), "editor": ("Read", "Edit", "Write")}
MAX_RETRIES = "4"  # its own default is 10, with waits of up to 40 s: over 3 minutes to fail
EXIT = {"done": 0, "failed": 1, "refused": 1, "max_turns": 2, "budget": 2, "api_error": 3}


def claude_argv(task: Mapping[str, Any]) -> list[str]:
    tools: list[str] = []
    for tool in task.get("tools") or ("bash", "editor"):
        tools += [t for t in ALIASES.get(tool, (tool,)) if t not in tools]
    argv = [
        "claude", "-p", str(task["prompt"]), "--output-format", "stream-json", "--verbose",
        "--max-turns", str(int(task["max_turns"])), "--model", str(task["model"]),
        "--permission-mode", "bypassPermissions", "--allowedTools", ",".join(tools),
    ]  # fmt: skip
    if task.get("system"):
        argv += ["--append-system-prompt", str(task["system"])]
    return argv


def claude_env(task: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k != "COATCHECK_AGENT_TASK"}
    env.update({
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1", "IS_SANDBOX": "1", "NODE_EXTRA_CA_CERTS": CA,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(int(task.get("max_tokens") or 8192)),
        "CLAUDE_CODE_MAX_RETRIES": MAX_RETRIES,
    })  # fmt: skip
    # A writable home of its own (the image's root file system is read-only), never copied out.
    workspace = environ.get("COATCHECK_WORKSPACE", "/workspace")
    env["HOME"] = f"{workspace}/.coatcheck/home"
    env["CLAUDE_CONFIG_DIR"] = env["HOME"] + "/.claude"
    return env


class Outcome:
    def __init__(self) -> None:
        self.status = "failed"
        self.turns = 0
        self.usage = dict.fromkeys(USAGE_KEYS, 0)
        self.cost_usd: float | None = None
        self.report = ""
        self.error = ""
        self.seen_result = False

    def result_json(self) -> dict[str, Any]:
        return {"status": self.status, "turns": self.turns, "usage": self.usage,
                "error": self.error, "exit_code": EXIT.get(self.status, 1),
                "cost_usd": self.cost_usd}  # fmt: skip


def follow(lines: Iterable[str], outcome: Outcome, transcript: IO[str], progress: IO[str],
           budget: int | None) -> bool:  # fmt: skip
    """Read Claude Code's stream-json; False as soon as the budget is spent."""
    seen_messages: set[str] = set()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            event = {"type": "text", "text": line.rstrip("\n")[:10_000]}
        if not isinstance(event, dict):
            continue
        transcript.write(json.dumps(event) + "\n")
        transcript.flush()
        kind = event.get("type")
        if kind == "assistant" and isinstance(event.get("message"), dict):
            msg = event["message"]
            mid = str(msg.get("id", ""))
            if mid not in seen_messages:  # one line per content block, one id per turn
                seen_messages.add(mid)
                outcome.turns += 1
                # The usage of a call's start (its input; output is 1 there): enough for the
                # budget; the result line brings the run's exact usage.
                _add_usage(outcome.usage, msg.get("usage"))
            for block in msg.get("content") or ():
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    step = {"turn": outcome.turns, "step": "tool", "tool": str(block.get("name")),
                            "tokens": sum(outcome.usage.values())}  # fmt: skip
                    progress.write(PROGRESS + json.dumps(step) + "\n")
                    progress.flush()
            if budget is not None and sum(outcome.usage.values()) >= budget:
                outcome.status = "budget"
                return False
        elif kind == "result":
            _take_result(event, outcome)
    return True


def _add_usage(total: dict[str, int], usage: Any) -> None:
    if isinstance(usage, dict):
        for k in USAGE_KEYS:
            v = usage.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                total[k] += v


def _take_result(event: Mapping[str, Any], outcome: Outcome) -> None:
    outcome.seen_result = True
    subtype = str(event.get("subtype", ""))
    text = event.get("result")
    errors = event.get("errors")
    if not isinstance(text, str) and isinstance(errors, list):  # error_max_turns has no result
        text = "\n".join(str(e) for e in errors)
    outcome.report = text if isinstance(text, str) else ""
    terminal = str(event.get("terminal_reason", ""))
    if isinstance(event.get("num_turns"), int):
        outcome.turns = event["num_turns"]
    if isinstance(event.get("usage"), dict):
        outcome.usage = dict.fromkeys(USAGE_KEYS, 0)
        _add_usage(outcome.usage, event["usage"])
    cost = event.get("total_cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        outcome.cost_usd = float(cost)
    if subtype == "success" and not event.get("is_error"):
        outcome.status = "done"
    elif subtype.startswith("error_max_turns") or terminal == "max_turns":
        outcome.status = "max_turns"
    elif subtype.startswith("error_max_budget"):
        outcome.status = "budget"
    elif terminal == "api_error" or event.get("api_error_status") is not None:
        outcome.status, outcome.error = "api_error", outcome.report[:2000]
    else:
        outcome.status = "failed"
        outcome.error = (outcome.report or subtype or "Claude Code reported an error")[:2000]


def main() -> int:
    task: dict[str, Any] = json.loads(Path(os.environ["COATCHECK_AGENT_TASK"]).read_text())
    workspace = Path(os.environ.get("COATCHECK_WORKSPACE", "/workspace"))
    state = workspace / ".coatcheck"
    state.mkdir(parents=True, exist_ok=True)
    (workspace / "out").mkdir(exist_ok=True)
    env = claude_env(task, os.environ)
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    outcome = Outcome()
    cwd = workspace
    with open(state / "transcript.jsonl", "a", encoding="utf-8") as transcript:
        try:
            if task.get("repo"):
                cwd = clone(task["repo"], workspace, env)
                transcript.write(json.dumps({"type": "repo", "cloned": str(cwd)}) + "\n")
            outcome = _run(task, env, cwd, transcript, outcome)
        except (RepoError, OSError, subprocess.SubprocessError) as exc:
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"[:2000]
            transcript.write(json.dumps({"type": "error", "error": outcome.error}) + "\n")
    (state / "report.md").write_text(outcome.report + "\n", encoding="utf-8")
    (state / "result.json").write_text(json.dumps(outcome.result_json()), encoding="utf-8")
    done = {"turn": outcome.turns, "step": outcome.status, "tokens": sum(outcome.usage.values())}
    print(PROGRESS + json.dumps(done), file=sys.stderr, flush=True)
    return EXIT.get(outcome.status, 1)


def _run(task: Mapping[str, Any], env: dict[str, str], cwd: Path, transcript: IO[str],
         outcome: Outcome) -> Outcome:  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - claude, with the job's own arguments
        claude_argv(task), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
    )  # fmt: skip
    assert proc.stdout is not None
    budget = task.get("budget_tokens")
    finished = follow(proc.stdout, outcome, transcript, sys.stderr, budget)
    if not finished:
        proc.terminate()
    code = proc.wait()
    if finished and not outcome.seen_result:
        outcome.status = "failed"
        outcome.error = (
            f"claude exited {code} after {time.monotonic() - started:.0f}s without a result"
        )
    return outcome
