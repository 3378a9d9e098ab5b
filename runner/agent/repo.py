"""``[repo]`` inside the sandbox: clone the job's repository into the workspace before the
agent starts, through the proxy like everything else. The token is the placeholder the
sandbox holds (``$SECRET``), sent as Basic auth ``x-access-token:<placeholder>``; the proxy
puts the real token in only on the way to the secret's own domains. The clone keeps that header
in its config, so the agent's own ``git push`` works the same way. Standard library only.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CLONE_TIMEOUT_S = 600


class RepoError(Exception):
    """The clone failed; the message says how (git's own last lines, no secret in them)."""


def _git(args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(  # noqa: S603 - git, with arguments of our own
        ["git", *args], env=dict(env), cwd=cwd, capture_output=True, text=True,
        timeout=CLONE_TIMEOUT_S, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[:500]
        raise RepoError(f"git {args[0] if args[0] != '-c' else args[2]} failed: {tail}")


def clone(repo: Mapping[str, Any], workspace: Path, env: Mapping[str, str]) -> Path:
    """Clone ``repo`` (``url``, ``branch``, ``secret``) to ``workspace/repo``; its path."""
    dest = workspace / "repo"
    config: list[str] = []
    secret = repo.get("secret")
    if secret:
        pair = f"x-access-token:{env.get(str(secret), '')}".encode()
        header = "Authorization: Basic " + base64.b64encode(pair).decode()
        config = ["-c", f"http.extraHeader={header}"]
    args = [*config, "clone", "--quiet"]
    if repo.get("branch"):
        args += ["--branch", str(repo["branch"])]
    _git([*args, "--", str(repo["url"]), str(dest)], {**env, "GIT_TERMINAL_PROMPT": "0"})
    if config:
        _git(["config", "http.extraHeader", config[1].split("=", 1)[1]], env, cwd=dest)
    _git(["config", "user.name", "coatcheck agent"], env, cwd=dest)
    _git(["config", "user.email", "agent@coatcheck.invalid"], env, cwd=dest)
    return dest
