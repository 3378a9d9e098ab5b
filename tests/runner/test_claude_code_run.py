"""Claude Code as the engine, end to end: the real proxy, the real sandbox (the
``coatcheck/claude-code`` image with the pinned ``claude``), a ``[repo]`` cloned from a local Git
smart-HTTP server with Basic auth, and the fake Messages API served as ``api.anthropic.com``.

The scripted model runs a Bash command, reads and edits a file, commits and pushes a branch,
and finishes. The fake must receive the real API key and the Git server the real token; the
sandbox held placeholders only; the transcript, report and artifact are in the run directory.
Skipped, with the reason, only when the image is not built (`coatcheck images build
claude-code`); CI builds it.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.conftest import CLAUDE_CODE_NOT_BUILT
from tests.runner.test_job_run import ran
from tests.sandbox.helpers import Home, coatcheck, vault_set
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_anthropic_script import Text, Thinking, ToolUse, Turn
from tests.support.git_http import GitServer

pytestmark = pytest.mark.docker

IMAGE = "coatcheck/claude-code:latest"
GIT_HOST = "git.coatcheck.test"
BUG = "def add(a, b):\n    return a - b\n"


@pytest.fixture(scope="module", autouse=True)
def image_built(docker_api: object) -> None:
    from images import build
    from sandbox.docker import Sandboxes

    state = build.status(Sandboxes(), ["claude-code"])[0].state
    if state != "current":
        pytest.skip(f"{CLAUDE_CODE_NOT_BUILT} ({state}): `coatcheck images build claude-code`")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("cc-run"))


@pytest.fixture(scope="module")
def keys(home: Home) -> dict[str, str]:
    values = {"ANTHROPIC_API_KEY": "sk-ant-api03-" + secrets.token_urlsafe(40),
              "GIT_TOKEN": "ghp_" + secrets.token_hex(18)}  # fmt: skip
    vault_set(home, "ANTHROPIC_API_KEY", values["ANTHROPIC_API_KEY"], "api.anthropic.com")
    vault_set(home, "GIT_TOKEN", values["GIT_TOKEN"], GIT_HOST)
    return values


@pytest.fixture(scope="module")
def fake(test_ca: trustme.CA, keys: dict[str, str]) -> Iterator[FakeAnthropic]:
    with FakeAnthropic.start(test_ca, api_key=keys["ANTHROPIC_API_KEY"]) as f:
        yield f


@pytest.fixture(scope="module")
def git(test_ca: trustme.CA, keys: dict[str, str]) -> Iterator[GitServer]:
    with GitServer.start(test_ca, user="x-access-token", password=keys["GIT_TOKEN"]) as g:
        g.create_repo("widgets", {"calc.py": BUG, "README.md": "# widgets\n"})
        yield g


def job_file(where: Path, ca_file: Path, fake: FakeAnthropic, git: GitServer) -> Path:
    shutil.copy(ca_file, where / "ca.pem")
    path = where / "fix.toml"
    path.write_text(
        'name = "cc-fix"\nsecrets = ["ANTHROPIC_API_KEY", "GIT_TOKEN"]\ntimeout = "4m"\n'
        f'resolve = ["api.anthropic.com:127.0.0.1", "{GIT_HOST}:127.0.0.1"]\n'
        'upstream_ca = ["ca.pem"]\n'
        f'[env]\nANTHROPIC_BASE_URL = "{fake.url_as()}"\n'
        f'[repo]\nurl = "{git.url("widgets", GIT_HOST)}"\nbranch = "main"\nsecret = "GIT_TOKEN"\n'
        '[agent]\nengine = "claude-code"\nmodel = "claude-sonnet-4-5"\n'
        'prompt = "Fix the bug in calc.py and push a branch."\nmax_turns = 8\n'
    )
    return path


def test_claude_code_fixes_a_bug_and_pushes_with_keys_it_never_held(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, git: GitServer, ca_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    calc = "/workspace/repo/calc.py"
    fake.enqueue(
        Turn.of(Thinking("Look first."), ToolUse("Bash", {
            "command": "git log --oneline | wc -l > /workspace/out/commits.txt",
            "description": "Count commits"}), stop_reason="tool_use"),
        Turn.tool("Read", {"file_path": calc}),
        Turn.tool("Edit", {"file_path": calc, "old_string": "a - b", "new_string": "a + b"}),
        Turn.tool("Bash", {"command": "git commit -qam 'Fix add' && "
                                      "git push -q origin HEAD:refs/heads/fix-add",
                           "description": "Push the fix"}),
        Turn.of(Thinking("Done."), Text("Fixed add() in calc.py; pushed fix-add.")),
    )  # fmt: skip
    result = coatcheck(home, "run", str(job_file(tmp_path, ca_file, fake, git)), timeout=300)
    assert result.code == 0, result
    run = ran(home, result)
    # The model provider got the real key, as Claude Code sends it.
    assert fake.pending == 0 and set(fake.keys_seen()) == {keys["ANTHROPIC_API_KEY"]}
    for req in fake.requests[-5:]:
        assert req.path == "/v1/messages?beta=true"
        assert req.header("anthropic-version") == "2023-06-01" and req.header("x-api-key")
    # The Git server got the real token (Basic auth) for the clone and the push.
    real = "Basic " + base64.b64encode(f"x-access-token:{keys['GIT_TOKEN']}".encode()).decode()
    pushes = [r for r in git.requests if "git-receive-pack" in r.path and r.status == 200]
    assert pushes and all(r.authorization == real for r in pushes)
    assert git.show("widgets", "fix-add", "calc.py") == BUG.replace("a - b", "a + b")
    # The run directory: transcript, report, artifact, usage and cost.
    record = run.record()
    assert record["kind"] == "agent" and record["status"] == "succeeded"
    assert record["turns"] == 5 and record["cost_usd"] > 0 and record["usage"]["output_tokens"] > 0
    assert (run.run_dir / "report.md").read_text().startswith("Fixed add() in calc.py")
    assert (run.run_dir / "out" / "commits.txt").read_text().strip() == "1"
    lines = [json.loads(x) for x in (run.run_dir / "transcript.jsonl").read_text().splitlines()]
    assert lines[-1]["type"] == "result" and lines[-1]["subtype"] == "success"
    assert {"system", "assistant", "user", "result"} <= {e["type"] for e in lines}
    # No real value anywhere the sandbox, the transcript or the output could show it.
    seen = result.stdout + result.stderr
    seen += "".join(p.read_text(errors="replace") for p in run.run_dir.rglob("*") if p.is_file())
    for value in (*keys.values(), real.split()[1]):
        assert value not in seen
