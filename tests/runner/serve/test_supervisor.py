"""runner/serve/supervisor.py: how a run ends (maximum runtime, stop_all, a child that never
started), with fake children and a real history."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.serve import supervisor
from runner.serve.launcher import Launch
from tests.runner.serve.fakes import Clock, Rig, at, job_toml, open_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(tmp_path / "home", Clock()) as r:
        r.deploy(job_toml(overlap="queue_one"))
        yield r


@pytest.fixture
def short(monkeypatch: pytest.MonkeyPatch) -> None:
    """No grace after the maximum runtime, little time between SIGTERM and SIGKILL."""
    monkeypatch.setattr(supervisor, "GRACE_S", 0.0)
    monkeypatch.setattr(supervisor, "STOP_S", 0.1)


def launch(rig: Rig, timeout: float | None = None) -> Launch:
    """A pending manual run of ``nightly``, ready to submit."""
    dep = rig.history.deployments.get("nightly")
    run_id, _ = rig.history.runs.create_triggered("nightly", "manual", actor="test")
    made = rig.book.launch(dep, run_id)
    return made if timeout is None else dataclasses.replace(made, timeout=timeout)


def test_a_run_that_ends_is_recorded_with_its_status(rig: Rig) -> None:
    one = launch(rig)
    assert rig.supervisor.submit(one, "skip") == "start"
    assert rig.run(one.run_id).status == "running"
    assert rig.run(one.run_id).run_dir == str(rig.home / "runs" / one.run_id)
    assert "--run-id" in rig.children[one.run_id].args
    done = rig.end(one.run_id, "failed", 3)
    assert (done.status, done.exit_code) == ("failed", 3)
    assert rig.kinds() == ["failure"]


def test_a_child_that_times_itself_out_is_timed_out(rig: Rig) -> None:
    one = launch(rig)
    rig.supervisor.submit(one, "skip")
    done = rig.end(one.run_id, "timeout", 124)
    assert (done.status, done.reason) == ("timed_out", "max_runtime")
    assert rig.kinds() == ["timeout"]


@pytest.mark.usefixtures("short")
@pytest.mark.parametrize("ignores_term", [False, True], ids=["stops-on-sigterm", "needs-sigkill"])
def test_a_run_past_its_max_runtime_is_stopped_and_timed_out(rig: Rig, ignores_term: bool) -> None:
    rig.children.hang, rig.children.ignore_term = True, ignores_term
    one = launch(rig, timeout=0.1)
    rig.supervisor.submit(one, "skip")
    rig.wait_until(lambda: rig.ended(one.run_id))
    child = rig.children[one.run_id]
    assert child.terminated and child.killed == ignores_term
    done = rig.run(one.run_id)
    assert (done.status, done.reason) == ("timed_out", "max_runtime")
    rig.wait_until(lambda: "timeout" in rig.kinds())
    assert rig.kinds() == ["timeout"]
    assert rig.history.deployments.get("nightly").consecutive_failures == 1


@pytest.mark.usefixtures("short")
def test_the_scheduler_enforces_the_max_runtime(tmp_path: Path) -> None:
    clock = Clock()
    with open_rig(tmp_path / "other", clock) as rig:
        rig.deploy(job_toml(max_runtime=0.1))
        rig.children.hang = True
        rig.tick(at(11, 0, 5))
        [run] = rig.runs()
        assert rig.book.launch(rig.history.deployments.get("nightly"), run.id).timeout == 0.1
        rig.wait_until(lambda: rig.ended(run.id))
        assert rig.run(run.id).status == "timed_out"
        rig.children.hang = False
        rig.tick(at(12, 0, 5))  # the hung run did not make the next slot skip
        assert [r.status for r in rig.runs()] == ["timed_out", "running"]


def test_stop_all_cancels_running_and_queued_runs(rig: Rig) -> None:
    running, queued = launch(rig), launch(rig)
    assert rig.supervisor.submit(running, "queue_one") == "start"
    assert rig.supervisor.submit(queued, "queue_one") == "queue"
    rig.supervisor.stop_all(timeout=5)
    for one in (running, queued):
        done = rig.run(one.run_id)
        assert (done.status, done.reason) == ("cancelled", "service stopping")
    assert rig.children[running.run_id].terminated
    assert queued.run_id not in rig.children
    late = launch(rig)
    assert rig.supervisor.submit(late, "skip") == "skip"  # nothing starts while stopping
    assert rig.run(late.run_id).status == "cancelled"
    assert rig.kinds() == []  # a cancelled run is nobody's failure
    assert rig.history.deployments.get("nightly").consecutive_failures == 0


def test_a_child_stopped_by_someone_else_is_an_error(rig: Rig) -> None:
    one = launch(rig)
    rig.supervisor.submit(one, "skip")
    rig.children[one.run_id].finish("stopped", 143, error="stopped (SIGTERM)")
    rig.wait_until(lambda: rig.ended(one.run_id))
    assert (rig.run(one.run_id).status, rig.run(one.run_id).reason) == (
        "error",
        "stopped (SIGTERM)",
    )


def test_a_child_that_cannot_start_is_an_error(rig: Rig) -> None:
    rig.children.fail_with = OSError("no python")
    one = launch(rig)
    rig.supervisor.submit(one, "skip")
    done = rig.run(one.run_id)
    assert (done.status, done.error_class) == ("error", "OSError")
    assert "could not start: no python" in (done.reason or "")
