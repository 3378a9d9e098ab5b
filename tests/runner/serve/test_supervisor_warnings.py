"""runner/serve/supervisor.py: a serve run's warnings (run.json's ``warnings``, e.g. a secret
overdue for rotation) are kept on its history row and sent once as a ``warning`` notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runner.serve.fakes import Clock, Rig, job_toml, open_rig

WARNING = "secret OLD was last rotated 45 days ago (rotate after 30d): rotate it with ..."


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(tmp_path / "home", Clock()) as r:
        r.deploy(job_toml())
        yield r


def end_with(rig: Rig, status: str, code: int, **extra: object) -> str:
    """Start a manual run of "nightly" and end its child with run.json holding ``extra``."""
    run_id, _ = rig.history.runs.create_triggered("nightly", "manual", actor="test")
    one = rig.book.launch(rig.history.deployments.get("nightly"), run_id)
    assert rig.supervisor.submit(one, "skip") == "start"
    rig.children[one.run_id].finish(status, code, **extra)
    rig.wait_until(lambda: rig.ended(one.run_id))
    return one.run_id


@pytest.mark.parametrize(("status", "code", "kinds"), [
    ("succeeded", 0, ["success", "warning"]), ("failed", 3, ["failure", "warning"]),
], ids=["succeeded", "failed"])  # fmt: skip
def test_warnings_reach_the_row_and_one_notice(
    rig: Rig, status: str, code: int, kinds: list[str]
) -> None:
    run_id = end_with(rig, status, code, warnings=[WARNING])
    assert rig.run(run_id).warnings == (WARNING,)
    assert rig.kinds() == kinds
    kind, fields = rig.notices[-1]
    assert kind == "warning" and fields == {"run_id": run_id, "deployment": "nightly",
                      "status": rig.run(run_id).status, "reason": WARNING}  # fmt: skip


def test_no_warnings_no_notice(rig: Rig) -> None:
    run_id = end_with(rig, "succeeded", 0, warnings=[])
    assert rig.run(run_id).warnings is None
    assert rig.kinds() == ["success"]


def test_junk_warnings_are_ignored(rig: Rig) -> None:
    run_id = end_with(rig, "succeeded", 0, warnings="not a list")
    assert rig.run(run_id).warnings is None and "warning" not in rig.kinds()
