"""runner/serve/actions.py: what the CLI and the HTTP triggers ask of the service, against a real
history, a real supervisor and fake children."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidJobFile, UsageError
from runner.history.errors import DeploymentNotFound
from runner.serve.actions import WEBHOOK_DOMAIN, Actions, webhook_secret_name
from runner.serve.tokens import token_hash, token_matches
from tests.runner.serve.fakes import T0, Clock, Rig, at, job_toml, open_rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(tmp_path / "home", Clock()) as r:
        yield r


def api(rig: Rig, key: str | None = None, name: str = "nightly") -> tuple[str | None, ...]:
    fired = rig.actions.fire(name, trigger="api", actor="api", key=key, body=b"{}")
    return fired.run_id, fired.refused


def test_deploy_creates_then_updates(rig: Rig) -> None:
    first = rig.deploy(job_toml())
    assert (first["deployment"], first["created"], first["config_version"]) == (
        "nightly",
        True,
        1,
    )
    assert first["status"] == "active"
    assert first["next"] == [at(h).isoformat() for h in (11, 12, 13, 14, 15)]
    assert rig.history.deployments.get("nightly").armed_at == T0
    rig.clock.now = at(12, 20)
    second = rig.deploy(job_toml(cron="30 * * * *"))
    assert (second["created"], second["config_version"]) == (False, 2)
    assert second["next"][0] == at(12, 30).isoformat()
    dep = rig.history.deployments.get("nightly")
    assert (dep.armed_at, dep.cron, dep.config_version) == (at(12, 20), "30 * * * *", 2)


def test_deploy_keeps_a_paused_deployment_paused(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.pause("nightly", "on holiday")
    assert rig.deploy(job_toml(cron="30 * * * *"))["status"] == "paused"
    assert rig.history.deployments.get("nightly").note == "on holiday"


def test_deploy_with_a_bad_cron_names_the_field(rig: Rig) -> None:
    with pytest.raises(InvalidJobFile) as caught:
        rig.deploy(job_toml(cron="0 0 31 2 *"))
    assert [field for field, _ in caught.value.problems] == ["schedule.cron"]
    assert "nightly.toml" in caught.value.file
    assert rig.history.deployments.find("nightly") is None


def test_deploy_checks_secrets_before_it_stores(rig: Rig) -> None:
    def refuse(job: object, source: Path) -> None:
        raise UsageError(f"{source}: API_KEY is not in the vault")

    actions = Actions(rig.history, rig.book, rig.supervisor, check_secrets=refuse,
                      reveal=lambda name: None, store_secret=lambda *a: None,
                      poke=lambda: None, clock=rig.clock)  # fmt: skip
    with pytest.raises(UsageError, match="API_KEY"):
        actions.deploy(job_toml(), str(rig.home), str(rig.home / "nightly.toml"))
    assert rig.history.deployments.find("nightly") is None


def test_run_now_is_allowed_when_paused(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.pause("nightly", None)
    run_id = rig.actions.run_now("nightly")["run_id"]
    run = rig.run(run_id)
    assert (run.status, run.trigger, run.actor) == ("running", "manual", "cli")
    assert rig.end(run_id).status == "succeeded"


def test_run_now_is_refused_when_archived_or_unknown(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.archive("nightly")
    with pytest.raises(UsageError, match="archived"):
        rig.actions.run_now("nightly")
    with pytest.raises(DeploymentNotFound):
        rig.actions.run_now("nobody")
    assert rig.runs() == []


def test_run_now_obeys_overlap(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.run_now("nightly")
    with pytest.raises(UsageError, match="still running"):
        rig.actions.run_now("nightly")
    assert [r.status for r in rig.runs()] == ["running", "skipped"]


def test_token_is_shown_once_and_stored_as_a_hash(rig: Rig) -> None:
    rig.deploy(job_toml())
    token = rig.actions.token("nightly")["token"]
    assert token.startswith("cctr_") and len(token) == 5 + 43
    stored = rig.history.deployments.get("nightly").token_hash
    assert stored == token_hash(token) and token not in (stored or "")
    target = rig.actions.lookup("nightly")
    assert target is not None and token_matches(token, target.token_hash)
    newer = rig.actions.token("nightly")["token"]
    assert not token_matches(token, rig.history.deployments.get("nightly").token_hash)
    assert token_matches(newer, rig.history.deployments.get("nightly").token_hash)


def test_webhook_secret_goes_to_the_vault(rig: Rig) -> None:
    rig.deploy(job_toml())
    answer = rig.actions.webhook("nightly")
    name = webhook_secret_name("nightly")
    assert answer["vault_name"] == name and name.startswith("COATCHECK_WEBHOOK_NIGHTLY_")
    assert rig.stored[name] == (answer["secret"], WEBHOOK_DOMAIN)
    assert rig.history.deployments.get("nightly").webhook_secret == name
    target = rig.actions.lookup("nightly")
    assert target is not None and target.webhook_secret == answer["secret"].encode()


def test_archived_refuses_tokens_and_firing(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.token("nightly")
    rig.actions.archive("nightly")
    assert rig.history.deployments.get("nightly").token_hash is None
    with pytest.raises(UsageError, match="archived"):
        rig.actions.token("nightly")
    assert api(rig) == (None, "archived")
    target = rig.actions.lookup("nightly")
    assert target is not None and target.status == "archived"
    assert rig.actions.lookup("nobody") is None


def test_fire_with_the_same_idempotency_key_returns_the_same_run(rig: Rig) -> None:
    rig.deploy(job_toml(overlap="allow"))
    first = rig.actions.fire("nightly", trigger="api", actor="api", key="k-1", body=b"x")
    again = rig.actions.fire("nightly", trigger="api", actor="api", key="k-1", body=b"x")
    assert first.created and not again.created
    assert again.run_id == first.run_id and again.refused is None
    other = rig.actions.fire("nightly", trigger="api", actor="api", key="k-2", body=None)
    assert other.created and other.run_id != first.run_id
    assert len(rig.runs()) == 2 and len(rig.children.procs) == 2
    assert first.run_id is not None and rig.run(first.run_id).idempotency_key == "k-1"


def test_webhook_delivery_is_deduplicated(rig: Rig) -> None:
    rig.deploy(job_toml())
    first = rig.actions.fire("nightly", trigger="webhook", actor="octocat", key="d-1", body=b"{}")
    again = rig.actions.fire("nightly", trigger="webhook", actor="octocat", key="d-1", body=b"{}")
    assert (again.run_id, again.created) == (first.run_id, False)
    assert first.run_id is not None and rig.run(first.run_id).delivery_id == "d-1"


def test_fire_hands_the_body_over_in_a_file(rig: Rig) -> None:
    rig.deploy(job_toml())
    run_id, refused = api(rig)
    assert refused is None and run_id is not None
    argv = rig.children[run_id].args
    given = Path(argv[argv.index("--input") + 1])
    assert given.read_bytes() == b"{}"


def test_fire_on_paused_is_refused_unless_allowed(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.pause("nightly", None)
    assert api(rig) == (None, "paused")
    assert rig.runs() == []
    rig.deploy(job_toml(allow_when_paused=True))
    run_id, refused = api(rig)
    assert refused is None and run_id is not None
    assert rig.run(run_id).status == "running"


def test_fire_over_the_daily_cap_is_refused_with_retry_after(rig: Rig) -> None:
    rig.deploy(job_toml(daily_cap=1))
    first, _ = api(rig, "k-1")
    assert first is not None
    rig.end(first)
    rig.clock.advance(hours=2)
    fired = rig.actions.fire("nightly", trigger="api", actor="api", key="k-2", body=None)
    assert fired.refused == "daily_cap"
    assert fired.retry_after == 22 * 3600
    assert fired.run_id is not None
    skipped = rig.run(fired.run_id)
    assert (skipped.status, skipped.reason, skipped.trigger) == ("skipped", "daily_cap", "api")
    rig.clock.advance(hours=22)
    assert api(rig, "k-3")[1] is None  # a day after the first: room again


def test_fire_over_overlap_is_refused_and_recorded(rig: Rig) -> None:
    rig.deploy(job_toml())
    api(rig, "k-1")
    run_id, refused = api(rig, "k-2")
    assert refused == "overlap" and run_id is not None
    assert (rig.run(run_id).status, rig.run(run_id).reason) == ("skipped", "overlap")


def test_unpause_rearms_and_says_when_next(rig: Rig) -> None:
    rig.deploy(job_toml())
    rig.actions.pause("nightly", "x")
    rig.clock.now = at(13, 20)
    answer = rig.actions.unpause("nightly")
    assert answer == {"deployment": "nightly", "status": "active",
                      "next": [at(14).isoformat()]}  # fmt: skip
    assert rig.history.deployments.get("nightly").armed_at == at(13, 20)
