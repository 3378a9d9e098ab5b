"""An agent job end to end: the real proxy, the real sandbox (the agent image), the real SDK
inside it, against the fake Messages API served as ``api.anthropic.com``.

The scripted model calls bash (which calls a second secret-bearing API with curl) and the
editor (which writes /workspace/out/report.txt), then finishes. The fake must receive the real
API key, the second API its real token; the run directory must hold the transcript, the report
and the artifact; no real value may appear in the run directory or the output.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.runner.test_job_run import ran
from tests.sandbox.helpers import (
    Home,
    coatcheck,
    finish,
    sandboxes_of,
    start_coatcheck,
    vault_set,
)
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_anthropic_script import Gate, Turn
from tests.support.upstream import Upstream, received_with

pytestmark = pytest.mark.docker

API = "api.coatcheck.test"
MODEL = "claude-sonnet-5-5"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("agent-run"))


@pytest.fixture(scope="module")
def keys(home: Home) -> dict[str, str]:
    values = {
        "ANTHROPIC_API_KEY": "sk-ant-api03-" + secrets.token_urlsafe(40),
        "API_TOKEN": "tok-" + secrets.token_hex(20),
    }
    vault_set(home, "ANTHROPIC_API_KEY", values["ANTHROPIC_API_KEY"], "api.anthropic.com")
    vault_set(home, "API_TOKEN", values["API_TOKEN"], API)
    return values


@pytest.fixture(scope="module")
def fake(test_ca: trustme.CA, keys: dict[str, str]) -> Iterator[FakeAnthropic]:
    with FakeAnthropic.start(test_ca, api_key=keys["ANTHROPIC_API_KEY"]) as f:
        yield f


def job_file(
    where: Path, ca_file: Path, fake: FakeAnthropic, *, timeout: str = "3m", image: str = "",
    **agent: object,
) -> Path:  # fmt: skip
    shutil.copy(ca_file, where / "ca.pem")
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in {"max_turns": 6, **agent}.items())
    top = f"image = {json.dumps(image)}\n" if image else ""
    path = where / "agent.toml"
    path.write_text(
        'name = "agent-e2e"\nsecrets = ["ANTHROPIC_API_KEY", "API_TOKEN"]\n'
        'resolve = ["api.anthropic.com:127.0.0.1", "api.coatcheck.test:127.0.0.1"]\n'
        f'upstream_ca = ["ca.pem"]\ntimeout = "{timeout}"\n{top}'
        f'[env]\nANTHROPIC_BASE_URL = "{fake.url_as()}"\n'
        f'[agent]\nmodel = "{MODEL}"\nprompt = "Check the API and write a report."\n'
        f"{lines}"
    )
    return path


def test_agent_job_uses_real_keys_only_at_the_boundary(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, upstream: Upstream, ca_file: Path,
    tmp_path: Path, tag: str,
) -> None:  # fmt: skip
    url = f"https://{API}:{upstream.port}/echo?t={tag}"
    fake.enqueue(
        Turn.tool("bash", {"command": f'curl -sS -H "Authorization: Bearer $API_TOKEN" "{url}"; '
                                      'ln -s /etc/passwd /workspace/out/passwd; '
                                      'truncate -s 1G /workspace/out/huge.bin'}),
        Turn.tool("str_replace_based_edit_tool", {"command": "create",
                  "path": "/workspace/out/report.txt", "file_text": "API answered\n"}),
        Turn.text("Finished: the API answered; see out/report.txt"),
    )  # fmt: skip
    result = coatcheck(home, "run", str(job_file(tmp_path, ca_file, fake)), timeout=300)
    assert result.code == 0, result
    run = ran(home, result)
    record = run.record()
    assert record["kind"] == "agent" and record["status"] == "succeeded"
    assert record["turns"] == 3 and record["usage"]["output_tokens"] > 0
    # The model provider got the real key; the sandbox only ever sent the placeholder.
    assert set(fake.keys_seen()) == {keys["ANTHROPIC_API_KEY"]}
    (second,) = received_with(upstream, tag)
    assert second.header("Authorization") == f"Bearer {keys['API_TOKEN']}"
    # The run directory: transcript, report, artifact; hostile files left out with a note.
    files = run.run_dir
    assert (files / "report.md").read_text().startswith("Finished: the API answered")
    assert (files / "out" / "report.txt").read_text() == "API answered\n"
    assert not (files / "out" / "passwd").exists() and not (files / "out" / "huge.bin").exists()
    note = (files / "out" / "COATCHECK-NOTE.txt").read_text()
    assert "passwd" in note and "huge.bin" in note
    transcript = [json.loads(x) for x in (files / "transcript.jsonl").read_text().splitlines()]
    assert [e["name"] for e in transcript if e["type"] == "tool_result"] == [
        "bash", "str_replace_based_edit_tool",
    ]  # fmt: skip
    # No real value anywhere the sandbox, the transcript or our files can show.
    seen = result.stdout + result.stderr
    for path in files.rglob("*"):
        if path.is_file():
            seen += path.read_text(errors="replace")
    for value in keys.values():
        assert value not in seen


def test_a_running_agents_container_holds_only_placeholders(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,
    docker_api: Any,
) -> None:  # fmt: skip
    """``docker inspect`` while the agent waits for its model: no real value in its config."""
    gate = Gate(after=2)
    fake.enqueue(Turn.text("done").gated(gate))
    proc = start_coatcheck(home, "run", str(job_file(tmp_path, ca_file, fake)))
    started = time.monotonic()
    try:
        assert gate.reached.wait(120), "the agent never called its model"
        (container,) = sandboxes_of(docker_api, proc.pid)
        inspected = json.dumps(docker_api.api.inspect_container(container.id))
        env = docker_api.api.inspect_container(container.id)["Config"]["Env"]
        assert any(e.startswith("ANTHROPIC_API_KEY=ccph_") for e in env)
        for value in keys.values():
            assert value not in inspected
    finally:
        gate.release()
    result = finish(proc, started)
    assert result.code == 0, result
