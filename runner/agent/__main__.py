"""The agent's process inside the sandbox: ``python3 -I /opt/coatcheck/agent/main.py``.

The task comes from the file named by ``COATCHECK_AGENT_TASK`` (JSON: the job's ``[agent]``
table, resolved by the runner). The workspace is ``/workspace``; what the agent writes to
``/workspace/out`` is the run's artifacts. The transcript (JSON lines), the final report and the
outcome go to ``/workspace/.coatcheck/``, from where the runner copies them out, treating them
as hostile like everything else from the sandbox. Progress goes to stderr, one line per step.
The API key is the placeholder in ``ANTHROPIC_API_KEY``: the proxy swaps in the real one.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from runner.agent.bash import BashSession
from runner.agent.editor import Editor
from runner.agent.loop import AgentTask, run_agent
from runner.agent.repo import clone

WORKSPACE = Path(os.environ.get("COATCHECK_WORKSPACE", "/workspace"))
STATE = WORKSPACE / ".coatcheck"
MAX_RETRIES = 4
PROGRESS = "coatcheck-progress "  # runner/progress.py renders these lines


def load_task(path: str, now: float) -> AgentTask:
    raw: dict[str, Any] = json.loads(Path(path).read_text())
    timeout = raw.get("timeout")
    return AgentTask(
        model=str(raw["model"]),
        prompt=str(raw["prompt"]),
        max_turns=int(raw["max_turns"]),
        max_tokens=int(raw["max_tokens"]),
        system=raw.get("system"),
        budget_tokens=raw.get("budget_tokens"),
        tools=tuple(raw.get("tools", ("bash", "editor"))),
        deadline=now + float(timeout) if timeout else None,
    )


def main() -> int:
    import anthropic

    task = load_task(os.environ["COATCHECK_AGENT_TASK"], time.monotonic())
    STATE.mkdir(parents=True, exist_ok=True)
    (WORKSPACE / "out").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "COATCHECK_AGENT_TASK"}
    repo = json.loads(Path(os.environ["COATCHECK_AGENT_TASK"]).read_text()).get("repo")
    cwd = clone(repo, WORKSPACE, env) if repo else WORKSPACE  # [repo], through the proxy
    bash = BashSession(cwd=str(cwd), env=env)
    editor = Editor(WORKSPACE)
    client = anthropic.Anthropic(max_retries=MAX_RETRIES)
    with open(STATE / "transcript.jsonl", "a", encoding="utf-8") as log:

        def transcript(event: dict[str, Any]) -> None:
            log.write(json.dumps(event, default=str) + "\n")
            log.flush()

        try:
            outcome = run_agent(
                client, task,
                tools={"bash": bash.call, "editor": editor.call},
                transcript=transcript,
                progress=lambda step: print(PROGRESS + json.dumps(step), file=sys.stderr,
                                            flush=True),
            )  # fmt: skip
        finally:
            bash.close()
    (STATE / "report.md").write_text(outcome.final_text + "\n", encoding="utf-8")
    result = {"status": outcome.status, "turns": outcome.turns, "usage": outcome.usage,
              "error": outcome.error, "exit_code": outcome.exit_code}  # fmt: skip
    (STATE / "result.json").write_text(json.dumps(result), encoding="utf-8")
    done = {"turn": outcome.turns, "step": outcome.status, "tokens": sum(outcome.usage.values())}
    print(PROGRESS + json.dumps(done), file=sys.stderr, flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
