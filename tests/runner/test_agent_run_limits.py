"""An agent job's limits and failures end to end: the real proxy, the real sandbox (the agent
image), the real SDK inside it, against the fake Messages API served as ``api.anthropic.com``.

Each test scripts the model's side, runs ``coatcheck run JOBFILE`` and checks the documented
exit code, what ``run.json`` says, what the fake received, and that the real key stayed out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner.test_agent_run import MODEL, fake, home, job_file, keys  # noqa: F401
from tests.runner.test_job_run import Ran, ran
from tests.sandbox.helpers import Home, coatcheck, finish, start_coatcheck
from tests.support.fake_anthropic import FakeAnthropic
from tests.support.fake_anthropic_script import Gate, Turn

pytestmark = pytest.mark.docker

TOOL = Turn.tool("bash", {"command": "echo working"})


@pytest.fixture(autouse=True)
def fresh_script(fake: FakeAnthropic) -> Iterator[None]:  # noqa: F811
    """Each test starts from an empty script, whatever the one before left."""
    fake.clear()
    yield
    fake.clear()


def run_job(home: Home, job: Path) -> tuple[Ran, dict, list[dict]]:  # noqa: F811
    result = coatcheck(home, "run", str(job), timeout=300)
    done = ran(home, result)
    transcript = done.run_dir / "transcript.jsonl"
    events = (
        [json.loads(x) for x in transcript.read_text().splitlines()] if transcript.exists() else []
    )
    return done, done.record(), events


def no_real_value(done: Ran, keys: dict[str, str]) -> None:  # noqa: F811
    seen = done.result.stdout + done.result.stderr
    seen += "".join(p.read_text(errors="replace") for p in done.run_dir.rglob("*") if p.is_file())
    for value in keys.values():
        assert value not in seen


def test_max_turns_stops_the_run_with_exit_2(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    fake.enqueue(TOOL, TOOL, TOOL)
    before = len(fake.requests)
    done, record, events = run_job(home, job_file(tmp_path, ca_file, fake, max_turns=2))
    assert done.result.code == 2, done.result
    assert record["turns"] == 2 and record["status"] == "failed"
    assert len(fake.requests) - before == 2  # the third turn was never asked for
    assert [e["type"] for e in events].count("tool_result") == 2
    no_real_value(done, keys)


def test_the_token_budget_stops_the_run_with_exit_2(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    fake.enqueue(TOOL, TOOL, TOOL)
    done, record, _ = run_job(home, job_file(tmp_path, ca_file, fake, budget_tokens=30))
    assert done.result.code == 2, done.result
    assert sum(record["usage"].values()) >= 30 and record["turns"] < 3  # cache tokens count


def test_a_rate_limit_is_retried_after_the_time_the_api_asks(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    fake.enqueue(Turn.rate_limited(retry_after=1), Turn.text("done after a wait"))
    before = len(fake.requests)
    done, record, _ = run_job(home, job_file(tmp_path, ca_file, fake))
    assert done.result.code == 0, done.result
    assert (done.run_dir / "report.md").read_text().startswith("done after a wait")
    assert record["turns"] == 1 and len(fake.requests) - before == 2
    assert set(fake.keys_seen()) == {keys["ANTHROPIC_API_KEY"]}
    model_calls = [a for a in done.audit() if a["host"] == "api.anthropic.com"]
    assert [a["secrets_injected"] for a in model_calls] == [["ANTHROPIC_API_KEY"]] * 2


def test_an_api_that_stays_overloaded_fails_the_run_with_exit_3(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    fake.enqueue(*[Turn.overloaded()] * 5)
    done, record, events = run_job(home, job_file(tmp_path, ca_file, fake))
    assert done.result.code == 3, done.result
    assert record["status"] == "failed" and events[-1]["type"] == "error"
    assert "529" in events[-1]["error"]
    no_real_value(done, keys)


def test_a_stream_cut_midway_is_retried_and_the_run_finishes(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    fake.enqueue(
        Turn.text("half an ans").failing(after=3),
        Turn.text("half an ans").dropped(after=3),
        Turn.text("the whole answer"),
    )
    done, record, events = run_job(home, job_file(tmp_path, ca_file, fake))
    assert done.result.code == 0, done.result
    assert record["turns"] == 1
    assert [e["attempt"] for e in events if e["type"] == "retry"] == [1, 2]
    assert (done.run_dir / "report.md").read_text().startswith("the whole answer")
    no_real_value(done, keys)


def test_the_jobs_timeout_stops_a_waiting_agent_with_exit_124(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    gate = Gate(after=2)
    fake.enqueue(Turn.text("never finished").gated(gate))
    proc = start_coatcheck(home, "run", str(job_file(tmp_path, ca_file, fake, timeout="15s")))
    started = time.monotonic()
    try:
        assert gate.reached.wait(120), "the agent never called its model"
        result = finish(proc, started)
    finally:
        gate.release()
    assert result.code == 124, result
    record = ran(home, result).record()
    assert record["status"] == "timeout"


def test_an_image_without_the_agent_loop_is_refused_with_the_fix(
    home: Home, keys: dict[str, str], fake: FakeAnthropic, ca_file: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    job = job_file(tmp_path, ca_file, fake, image="coatcheck/base:trixie")
    result = coatcheck(home, "run", str(job), timeout=300)
    assert result.code == 125, result
    assert "no coatcheck agent loop" in result.stderr and "FROM coatcheck/agent" in result.stderr
