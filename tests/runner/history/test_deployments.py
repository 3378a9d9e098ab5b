"""Deployments (runner/history/deployments.py): updates re-arm without backfill, archive is
final, the last slot only moves forwards."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from runner.history import History
from runner.history.errors import DeploymentArchived, DeploymentNotFound
from tests.runner.history.helpers import T0, Clock, deploy


def test_create_then_update_bumps_the_version_and_rearms(history: History, clock: Clock) -> None:
    deploy(history)
    first = history.deployments.get("nightly")
    assert (first.status, first.config_version, first.armed_at) == ("active", 1, T0)
    assert history.deployments.advance_last_slot("nightly", T0 - timedelta(hours=3))
    later = clock.advance(hours=1)
    history.deployments.upsert(
        "nightly", job_toml="x", job_base="/b", cron="*/5 * * * *", timezone="Europe/Paris"
    )
    dep = history.deployments.get("nightly")
    assert (dep.config_version, dep.armed_at, dep.created_at, dep.updated_at) == (
        2, later, T0, later,
    )  # fmt: skip
    assert (dep.job_toml, dep.job_base, dep.cron, dep.timezone) == (
        "x", "/b", "*/5 * * * *", "Europe/Paris",
    )  # fmt: skip
    assert dep.last_slot == T0 - timedelta(hours=3)


def test_pause_and_unpause(history: History, clock: Clock) -> None:
    deploy(history)
    assert history.deployments.note_result("nightly", failed=True) == 1
    assert history.deployments.note_result("nightly", failed=True) == 2
    paused = history.deployments.pause("nightly", "error", "5 failures in a row")
    assert (paused.status, paused.paused_reason, paused.note) == (
        "paused", "error", "5 failures in a row",
    )  # fmt: skip
    assert [d.name for d in history.deployments.list("paused")] == ["nightly"]
    assert history.deployments.list("active") == []
    now = clock.advance(minutes=10)
    back = history.deployments.unpause("nightly")
    assert (back.status, back.paused_reason, back.consecutive_failures, back.armed_at) == (
        "active", None, 0, now,
    )  # fmt: skip


def test_archive_is_final_and_revokes_the_token(history: History) -> None:
    deploy(history)
    digest = hashlib.sha256(b"cct_token").hexdigest()
    assert history.deployments.set_token_hash("nightly", digest).token_hash == digest
    archived = history.deployments.archive("nightly")
    assert (archived.status, archived.token_hash) == ("archived", None)
    assert history.deployments.archive("nightly") == archived
    with pytest.raises(DeploymentArchived, match="new name"):
        deploy(history)
    with pytest.raises(DeploymentArchived):
        history.deployments.unpause("nightly")
    with pytest.raises(DeploymentArchived):
        history.deployments.set_token_hash("nightly", digest)


def test_only_a_hash_is_taken_for_a_token(history: History) -> None:
    deploy(history)
    with pytest.raises(ValueError, match="never the token"):
        history.deployments.set_token_hash("nightly", "cct_" + "a" * 60)
    dep = history.deployments.set_webhook_secret("nightly", "GITHUB_WEBHOOK_SECRET")
    assert dep.webhook_secret == "GITHUB_WEBHOOK_SECRET"


def test_the_last_slot_only_moves_forwards(history: History) -> None:
    deploy(history)
    assert history.deployments.advance_last_slot("nightly", T0)
    assert not history.deployments.advance_last_slot("nightly", T0)
    assert not history.deployments.advance_last_slot("nightly", T0 - timedelta(minutes=1))
    assert history.deployments.advance_last_slot("nightly", T0 + timedelta(minutes=1))
    assert history.deployments.get("nightly").last_slot == T0 + timedelta(minutes=1)


def test_unknown_names_say_how_to_list(history: History) -> None:
    with pytest.raises(DeploymentNotFound, match="deployments list"):
        history.deployments.get("nope")
    assert history.deployments.find("nope") is None
    with pytest.raises(DeploymentNotFound):
        history.deployments.note_result("nope", failed=False)
