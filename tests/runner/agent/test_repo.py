"""``[repo]`` inside the sandbox (runner/agent/repo.py), with the host's git against a local
smart-HTTP server: the token goes as Basic auth from the environment (the sandbox's placeholder),
the clone keeps it for the agent's own push, and a failure says so without the token."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from runner.agent.repo import RepoError, clone
from tests.support.git_http import GitServer, basic, git_env

TOKEN = "ghp_" + "t0ken" * 7


@pytest.fixture
def git(test_ca: trustme.CA) -> Iterator[GitServer]:
    with GitServer.start(test_ca, user="x-access-token", password=TOKEN) as g:
        g.create_repo("widgets", {"calc.py": "x = 1\n"}, branch="main")
        yield g


def env(tmp_path: Path, ca_file: Path, token: str) -> dict[str, str]:
    return {**git_env(tmp_path / "home"), "GIT_SSL_CAINFO": str(ca_file), "GIT_TOKEN": token}


def test_clone_with_the_token_from_the_environment_and_push_with_it(git, tmp_path, ca_file):
    e = env(tmp_path, ca_file, TOKEN)
    dest = clone({"url": git.url("widgets"), "branch": "main", "secret": "GIT_TOKEN"}, tmp_path, e)
    assert dest == tmp_path / "repo" and (dest / "calc.py").read_text() == "x = 1\n"
    assert all(r.authorization == basic("x-access-token", TOKEN) for r in git.requests)
    (dest / "calc.py").write_text("x = 2\n")
    push = "git commit -qam change && git push -q origin HEAD:refs/heads/agent"
    subprocess.run(["sh", "-c", push], cwd=dest, env=e, check=True)  # the clone's own config
    assert git.show("widgets", "agent", "calc.py") == "x = 2\n"
    url_in_config = (dest / ".git" / "config").read_text()
    assert "extraHeader" in url_in_config and "x-access-token" not in url_in_config  # base64


def test_a_refused_clone_says_so_without_the_token(git, tmp_path, ca_file):
    wrong = "ghp_" + "wr0ng" * 7
    with pytest.raises(RepoError) as err:
        clone({"url": git.url("widgets"), "secret": "GIT_TOKEN"}, tmp_path,
              env(tmp_path, ca_file, wrong))  # fmt: skip
    assert "git clone failed" in str(err.value) and wrong not in str(err.value)
    assert [r.status for r in git.requests] == [401]
