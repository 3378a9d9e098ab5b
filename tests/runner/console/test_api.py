"""The console's JSON API: listings and the four actions, for scripts with the bearer token."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.runner.console.conftest import Seeded


@pytest.fixture
def auth(seeded: Seeded) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.token}"}


def test_deployments(anon: TestClient, auth: dict[str, str], seeded: Seeded) -> None:
    listed = anon.get("/v1/console/deployments", headers=auth).json()["deployments"]
    by_name = {d["name"]: d for d in listed}
    assert by_name["held"]["status"] == "paused"
    nightly = by_name["nightly"]
    assert nightly["schedule"] == "At 03:00 every day"
    assert len(nightly["next"]) == 5
    assert nightly["next"][0] == {"utc": "2025-03-10T02:00:00+00:00",
                                  "local": "2025-03-10T03:00:00+01:00"}  # fmt: skip
    assert nightly["last_run"] == {"id": seeded.running, "status": "running"}


@pytest.mark.parametrize(
    ("query", "count"),
    [("", 3), ("?deployment=nightly", 3), ("?deployment=held", 0), ("?status=failed", 1),
     ("?limit=1", 1)],
)  # fmt: skip
def test_runs(anon: TestClient, auth: dict[str, str], query: str, count: int) -> None:
    assert len(anon.get(f"/v1/console/runs{query}", headers=auth).json()["runs"]) == count


@pytest.mark.parametrize("query", ["?status=nope", "?limit=0", "?limit=x", "?limit=501"])
def test_runs_bad_query(anon: TestClient, auth: dict[str, str], query: str) -> None:
    answer = anon.get(f"/v1/console/runs{query}", headers=auth)
    assert answer.status_code == 400
    assert answer.json()["error"]


def test_one_run(anon: TestClient, auth: dict[str, str], seeded: Seeded) -> None:
    run = anon.get(f"/v1/console/runs/{seeded.ok}", headers=auth).json()
    assert (run["status"], run["exit_code"], run["duration_s"]) == ("succeeded", 0, 42.0)
    assert anon.get("/v1/console/runs/r-nope", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("name", "action", "body", "status", "expected"),
    [
        ("nightly", "pause", {"note": "maintenance"}, 200, {"status": "paused"}),
        ("nightly", "pause", None, 200, {"status": "paused", "note": None}),
        ("held", "unpause", None, 200, {"status": "active"}),
        ("nightly", "archive", None, 200, {"status": "archived"}),
        ("nightly", "run", None, 200, {"deployment": "nightly"}),
        ("nope", "pause", None, 404, {}),
        ("nightly", "delete", None, 404, {}),
    ],
    ids=["pause-note", "pause", "unpause", "archive", "run", "unknown-name", "unknown-action"],
)
def test_actions(
    anon: TestClient, auth: dict[str, str], name: str, action: str, body: Any, status: int,
    expected: dict[str, Any],
) -> None:  # fmt: skip
    answer = anon.post(f"/v1/console/deployments/{name}/{action}", headers=auth, json=body)
    assert answer.status_code == status
    assert expected.items() <= answer.json().items()


def test_a_refused_action_is_409(anon: TestClient, auth: dict[str, str], seeded: Seeded) -> None:
    seeded.history.deployments.archive("held")
    answer = anon.post("/v1/console/deployments/held/unpause", headers=auth)
    assert answer.status_code == 409
    assert "archived" in answer.json()["error"]


@pytest.mark.parametrize("body", [b"not json", b'{"note": 5}', b"x" * 20000])
def test_bad_bodies(anon: TestClient, auth: dict[str, str], seeded: Seeded, body: bytes) -> None:
    answer = anon.post("/v1/console/deployments/nightly/pause", headers=auth, content=body)
    assert answer.status_code in (400, 413)
    assert seeded.actions.calls == []
