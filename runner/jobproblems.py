"""Job-file problems in words a person can act on: ``FIELD: what is wrong, and the fix``.

pydantic's errors are translated here, one line each, never dumped: a field path in TOML terms
(``agent.max_turns``, ``secrets[2]``, ``env.PORT``), then our own message (a validator's) or the
field's hint (``must be a positive integer, e.g. max_turns = 20``). Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Final

from pydantic import ValidationError

from runner.durations import FIX as DURATION_FIX

# What each field must be, with an example; by field path without list indices ("env.*" for
# any variable of the env table).
HINTS: Final = {
    "name": 'a job name of letters, digits, ".", "-" and "_", e.g. name = "ci-smoke"',
    "image": 'a local image name, e.g. image = "coatcheck/sandbox:latest"',
    "timeout": f"a duration: {DURATION_FIX}",
    "secrets": 'a list of vaulted secret names, e.g. secrets = ["GITHUB_TOKEN"]',
    "allow": 'a list of host patterns, e.g. allow = ["api.example.com", "*.example.org"]',
    "allow_opaque": "a list of host patterns spliced without interception, e.g. "
    'allow_opaque = ["pypi.org", "files.pythonhosted.org"]',
    "resolve": 'a list of "HOST:ADDR", e.g. resolve = ["api.internal.test:10.0.0.5"]',
    "upstream_ca": 'a list of PEM files relative to the job file, e.g. upstream_ca = ["ca.pem"]',
    "env": 'a table of strings, e.g. env = { LOG_LEVEL = "debug" }',
    "env.*": 'a string, e.g. env = { PORT = "8080" }',
    "resources": 'a table, e.g. resources = { memory = "2g", cpus = 2, pids = 512 }',
    "resources.memory": 'a size with a unit b, k, m or g, e.g. memory = "2g"',
    "resources.cpus": "a positive number of CPUs, e.g. cpus = 1.5",
    "resources.pids": "a whole number from 16 up, e.g. pids = 512",
    "on_leak": '"log" or "block", e.g. on_leak = "block"',
    "command": 'a list of strings, the program first, e.g. command = ["make", "test"]',
    "agent": 'a table: [agent] with model = "claude-sonnet-4-5" and prompt = "..."',
    "agent.model": 'a model name, e.g. model = "claude-sonnet-4-5"',
    "agent.prompt": 'a string, e.g. prompt = "Summarize the failing tests"',
    "agent.prompt_file": 'a file relative to the job file, e.g. prompt_file = "prompts/task.md"',
    "agent.system": 'a string, e.g. system = "You are a careful release engineer."',
    "agent.max_turns": "a positive integer, e.g. max_turns = 20",
    "agent.max_tokens": "a positive integer up to 128000, e.g. max_tokens = 8192",
    "agent.budget_tokens": "a positive integer, e.g. budget_tokens = 500000",
    "agent.tools": 'a list of tool names (bash, editor), e.g. tools = ["bash", "editor"]',
    "agent.workspace": 'a directory relative to the job file, e.g. workspace = "repo"',
}


class FieldError(ValueError):
    """A problem a validator found at ``path``, relative to the model or field it checks
    (``"prompt"`` in the agent table, ``"[2]"`` in a list, ``"PORT"`` in env)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def field_path(parts: Sequence[str | int]) -> str:
    """``("agent", "tools", 1)`` -> ``agent.tools[1]``; ``("secrets", "[2]")`` -> ``secrets[2]``."""
    out = ""
    for part in parts:
        text = f"[{part}]" if isinstance(part, int) else str(part)
        out += text if (not out or text.startswith("[")) else "." + text
    return out


def hint_key(parts: Sequence[str | int]) -> str:
    names = [p for p in parts if isinstance(p, str) and not p.startswith("[")]
    if names[:1] == ["env"] and len(names) > 1:
        return "env.*"
    return ".".join(names)


def problems_of(
    exc: ValidationError, fields: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, str], ...]:
    """``(field path, message)`` for each error in ``exc``; ``fields`` lists the known field
    names of each table ("" for the top level), for the "did you mean" of an unknown one."""
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        parts: list[str | int] = [p for p in err["loc"] if isinstance(p, str | int)]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):
            parts += [cause.path]
            message = cause.message
        elif isinstance(cause, ValueError):
            message = str(cause)
        elif err["type"] == "extra_forbidden":
            message = _unknown(parts, fields)
        elif err["type"] == "missing":
            message = f"is required: {_hint(parts)}"
        else:
            message = f"must be {_hint(parts)}"
        problem = (field_path(parts), message)
        if problem not in out:
            out.append(problem)
    return tuple(out)


def _hint(parts: Sequence[str | int]) -> str:
    return HINTS.get(hint_key(parts), "something else; see the README's Job files section")


def _unknown(parts: Sequence[str | int], fields: Mapping[str, Sequence[str]]) -> str:
    table = hint_key(parts[:-1])
    known = fields.get(table, ())
    close = difflib.get_close_matches(str(parts[-1]), known, n=1)
    where = f"the [{table}] table" if table else "a job file"
    guess = f"did you mean {close[0]}? " if close else ""
    return f"unknown field; {guess}{where} takes {', '.join(known)}"
