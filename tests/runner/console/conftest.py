"""A console over a real History on tmp_path, seeded with deployments, runs and run
directories (hostile text in them), a fake ``Actions``, and clients signed in or not."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.errors import UsageError
from runner.console.admin_token import admin_token_hash, new_admin_token
from runner.console.app import build, routes_of
from runner.console.context import Console
from runner.history import History, history_path
from runner.history.errors import DeploymentNotFound
from tests.runner.history.helpers import Clock
from tests.runner.serve.fakes import job_toml

T0 = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
BASE = "https://testserver"


class FakeActions:
    """The four actions as ``runner.serve.actions.Actions`` does them, on the same history."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.calls: list[tuple[str, ...]] = []

    def _live(self, name: str) -> None:
        dep = self.history.deployments.find(name)
        if dep is None:
            raise DeploymentNotFound(f"no deployment named {name!r}")
        if dep.status == "archived":
            raise UsageError(f"{name} is archived and can't be changed; deploy it anew")

    def pause(self, name: str, note: str | None) -> dict[str, Any]:
        self.calls.append(("pause", name, note or ""))
        self._live(name)
        dep = self.history.deployments.pause(name, "manual", note)
        return {"deployment": name, "status": dep.status, "note": note}

    def unpause(self, name: str) -> dict[str, Any]:
        self.calls.append(("unpause", name))
        self._live(name)
        return {"deployment": name, "status": self.history.deployments.unpause(name).status}

    def run_now(self, name: str) -> dict[str, Any]:
        self.calls.append(("run", name))
        self._live(name)
        run_id, _ = self.history.runs.create_triggered(name, "manual", actor="console")
        return {"deployment": name, "run_id": run_id}

    def archive(self, name: str) -> dict[str, Any]:
        self.calls.append(("archive", name))
        self._live(name)
        return {"deployment": name, "status": self.history.deployments.archive(name).status}


def write_run_dir(home: Path, run_id: str, **files: str | bytes) -> Path:
    directory = home / "runs" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name.replace("__", ".")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return directory


def lines(*events: Any) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


TRANSCRIPT = lines(
    {"type": "message", "message": {"role": "user", "content": [{"type": "text",
                                                                    "text": "Fix " + XSS}]}},
    {"type": "message", "message": {"role": "assistant", "content": [
        {"type": "text", "text": "Looking " + IMG},
        {"type": "tool_use", "id": "t1", "name": "bash", "input": {"command": "ls " + XSS}}]}},
    {"type": "tool_result", "name": "bash", "input": {"command": "ls"},
     "result": {"type": "tool_result", "tool_use_id": "t1", "content": "out " + IMG,
                "is_error": False}},
)  # fmt: skip
AUDIT = lines(
    {"run_id": "x", "method": "GET", "host": "api.example.com", "path": "/v1/" + XSS,
     "status": 200, "decision": "allow", "reason": "policy", "ts": "2025-03-09T06:00:01Z"},
    {"run_id": "x", "method": "POST", "host": "evil.test", "path": "/steal",
     "status": 403, "decision": "deny", "reason": "domain_not_allowed"},
)  # fmt: skip


ARTIFACTS: dict[str, str | bytes] = {"out/result.txt": "the result", "out/sub/deep.bin": b"\0\1"}


@dataclass
class Seeded:
    history: History
    home: Path
    clock: Clock
    actions: FakeActions
    token: str
    ok: str = ""  # a succeeded agent run of nightly
    failed: str = ""
    running: str = ""
    runs: dict[str, str] = field(default_factory=dict)


def _run(history: History, clock: Clock, name: str, *, took: float, status: Any,
         code: int | None) -> str:  # fmt: skip
    run_id, _ = history.runs.create_triggered(name, "api", actor="api")
    history.runs.mark_running(run_id)
    if status != "running":
        clock.advance(seconds=took)
        history.runs.finish(run_id, status, exit_code=code, reason=None)
    return run_id


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    home = tmp_path / "home"
    clock = Clock(T0)
    history = History.open(history_path(home), clock=clock)
    history.deployments.upsert("nightly", job_toml=job_toml("nightly", "0 3 * * *",
                               timezone="Europe/Berlin"), job_base="/jobs", cron="0 3 * * *",
                               timezone="Europe/Berlin")  # fmt: skip
    history.deployments.upsert("held", job_toml=job_toml("held"), job_base="/jobs",
                               cron="0 * * * *")  # fmt: skip
    history.deployments.pause("held", "manual", "until " + XSS)
    s = Seeded(history, home, clock, FakeActions(history), new_admin_token(home))
    s.ok = _run(history, clock, "nightly", took=42.0, status="succeeded", code=0)
    s.failed = _run(history, clock, "nightly", took=5.0, status="failed", code=1)
    s.running = _run(history, clock, "nightly", took=0, status="running", code=None)
    record = {"id": s.ok, "job": "nightly", "kind": "agent", "status": "succeeded",
              "exit_code": 0, "started": T0.isoformat(), "image": "x", "cost_usd": 0.0123,
              "usage": {"input_tokens": 1200, "output_tokens": 340,
                        "cache_read_input_tokens": 77}}  # fmt: skip
    out = write_run_dir(home, s.ok, run__json=json.dumps(record), transcript__jsonl=TRANSCRIPT,
                        output__log=b"hello " + XSS.encode() + b" \xff\xfe end\n",
                        audit__jsonl=AUDIT, report__md="# Report\n" + XSS + "\n",
                        **ARTIFACTS)  # fmt: skip
    (home / "secret.txt").write_text("do not serve")
    os.symlink(home / "secret.txt", out / "out" / "link.txt")
    running = {**record, "id": s.running, "status": "running"}
    write_run_dir(home, s.running, run__json=json.dumps(running), output__log="line one\n",
                  transcript__jsonl=TRANSCRIPT.splitlines(keepends=True)[0])  # fmt: skip
    clock.now = T0 + timedelta(minutes=5)
    yield s
    history.close()


@pytest.fixture
def console(seeded: Seeded) -> Console:
    s = seeded
    return build(history=s.history, home=s.home, actions=s.actions,
                 admin_token_hash=lambda: admin_token_hash(s.home), clock=s.clock)  # fmt: skip


@pytest.fixture
def app(console: Console) -> Starlette:
    return Starlette(routes=routes_of(console, poll_s=0.01))


@pytest.fixture
def anon(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(app: Starlette, seeded: Seeded) -> Iterator[TestClient]:
    """Signed in with a session cookie."""
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        answer = c.post("/login", data={"token": seeded.token})
        assert answer.status_code == 303, answer.text
        yield c
