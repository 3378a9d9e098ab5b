"""``coatcheck serve`` end to end with the real engine: two services on one home (one database),
cron runs once a minute, pause/unpause without backfill, the API and GitHub triggers, and a
plain ``coatcheck run`` in the same history.

One module-scoped pair of services; the every-minute deployment is made when they start, so
its slots pass while the trigger tests run. Module time is about two minutes (cron minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import Home, coatcheck
from tests.serve.helpers import (
    Service,
    deploy,
    deployment,
    finished,
    ok,
    output_of,
    run_show,
    runs,
    start_serve,
    wait_for,
)

pytestmark = pytest.mark.docker

EVERY_MINUTE = """command = ["sh", "-c", "echo tick from the schedule"]
[schedule]
cron = "* * * * *"
min_interval = "1m"
"""
READS_INPUT = 'command = ["sh", "-c", "cat \\"$COATCHECK_INPUT\\""]\n'
ON_PUSH = READS_INPUT + '[trigger.github]\nevents = ["push"]\n'
MINUTE = timedelta(minutes=1)


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = Home(root)
        self.first: Service | None = None
        self.second: Service | None = None

    @property
    def a(self) -> Service:
        assert self.first is not None
        return self.first

    @property
    def b(self) -> Service:
        assert self.second is not None
        return self.second


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("serve-e2e"))
    try:
        e.first = start_serve(e.home, e.root).wait_ready()
        e.second = start_serve(e.home, e.root).wait_ready()
        deploy(e.home, e.root, "every-minute", EVERY_MINUTE)
        deploy(e.home, e.root, "pausable", EVERY_MINUTE)
        yield e
    finally:
        for service in (e.second, e.first):
            if service is not None:
                service.close()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def next_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0) + MINUTE


def fire_log_ids(*services: Service) -> list[str]:
    """The run ids every ``fire`` line (a scheduler starting a slot's run) names."""
    ids = []
    for s in services:
        for line in s.log_text().splitlines():
            if line.startswith("{") and '"event": "fire"' in line:
                ids.append(json.loads(line)["run_id"])
    return ids


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- triggers (these run first: the cron minutes pass meanwhile) ---------------------------------
def test_an_api_trigger_hands_the_body_to_the_job_once_per_idempotency_key(env: Env) -> None:
    home = env.home
    deploy(home, env.root, "api-job", READS_INPUT)
    token = ok(home, "deployments", "token", "api-job").strip()
    body = b"untrusted $(id) `whoami` input\n"
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": "key-1"}

    first = env.b.post("/v1/deployments/api-job/run", body, **auth)  # the service without
    repeat = env.a.post("/v1/deployments/api-job/fire", body, **auth)  # the control socket

    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    assert first.json()["created"] is True
    assert repeat.status_code == 202, repeat.text
    assert repeat.json() == {"run_id": run_id, "created": False}, "a repeat key made a new run"
    shown = finished(home, run_id)
    assert shown["status"] == "succeeded", shown
    assert shown["trigger"] == "api" and shown["idempotency_key"] == "key-1", shown
    assert output_of(home, run_id).encode() == body, "the job did not read the body as it was sent"
    listed = runs(home, "api-job")
    assert [(r["id"], r["trigger"]) for r in listed] == [(run_id, "api")], listed

    wrong = env.a.post("/v1/deployments/api-job/run", body, Authorization="Bearer cc_wrong")
    missing = env.a.post("/v1/deployments/api-job/run", body)
    assert wrong.status_code == 401, wrong.text
    assert missing.status_code == 401, missing.text
    assert len(runs(home, "api-job")) == 1, "a refused request made a run"

    ok(home, "deployments", "archive", "api-job")
    gone = env.a.post("/v1/deployments/api-job/run", body, Authorization=f"Bearer {token}")
    assert gone.status_code == 410, gone.text
    assert coatcheck(home, "deployments", "run", "api-job").code != 0, "archived, yet run now ran"
    assert len(runs(home, "api-job")) == 1, "an archived deployment made a run"


def test_a_signed_github_push_runs_once_per_delivery(env: Env) -> None:
    home = env.home
    deploy(home, env.root, "on-push", ON_PUSH)
    secret = ok(home, "deployments", "webhook", "on-push").splitlines()[0].strip()
    payload = {"ref": "refs/heads/main", "repository": {"full_name": "acme/widgets"},
               "sender": {"login": "octocat"}}  # fmt: skip
    raw = json.dumps(payload).encode()
    delivery = str(uuid.uuid4())

    def send(event: str, body: bytes, signature: str, delivery_id: str) -> Any:
        return env.a.post("/v1/deployments/on-push/github", body, **{
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256": signature, "Content-Type": "application/json"})  # fmt: skip

    forged = send("push", raw, signed("not-the-secret", raw), str(uuid.uuid4()))
    assert forged.status_code == 401, forged.text
    assert runs(home, "on-push") == [], "a delivery with a bad signature made a run"

    fired = send("push", raw, signed(secret, raw), delivery)
    assert fired.status_code == 202, fired.text
    run_id = fired.json()["run_id"]
    again = send("push", raw, signed(secret, raw), delivery)
    assert again.status_code == 200, again.text
    assert again.json() == {"run_id": run_id, "duplicate": True}, again.text

    ping = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    pong = send("ping", ping, signed(secret, ping), str(uuid.uuid4()))
    assert pong.status_code == 200 and pong.json().get("ping") is True, pong.text
    other = send("issues", raw, signed(secret, raw), str(uuid.uuid4()))
    assert other.status_code == 200 and "ignored" in other.json(), other.text

    shown = finished(home, run_id)
    assert shown["status"] == "succeeded", shown
    assert (shown["trigger"], shown["delivery_id"], shown["actor"]) == (
        "webhook", delivery, "octocat"), shown  # fmt: skip
    assert json.loads(output_of(home, run_id)) == payload, "the job did not get the payload"
    assert [r["id"] for r in runs(home, "on-push")] == [run_id], "ping/duplicate/ignored ran"


def test_a_plain_coatcheck_run_is_in_the_history_as_manual(env: Env) -> None:
    r = coatcheck(env.home, "run", "--", "true")

    assert r.code == 0, str(r)
    newest = runs(env.home)[0]
    assert (newest["trigger"], newest["deployment"], newest["status"]) == (
        "manual", None, "succeeded"), newest  # fmt: skip


# -- the schedule ----------------------------------------------------------------------------
def test_pause_stops_runs_and_unpause_does_not_backfill(env: Env) -> None:
    home = env.home
    ok(home, "deployments", "pause", "pausable", "--note", "maintenance window")
    paused_at = now()
    shown = deployment(home, "pausable")
    assert (shown["status"], shown["paused_reason"], shown["note"]) == (
        "paused", "manual", "maintenance window"), shown  # fmt: skip
    assert shown["next"] == [], "a paused deployment lists fire times"
    listed = {d["name"]: d for d in json.loads(ok(home, "deployments", "list", "--json"))}
    assert listed["pausable"]["note"] == "maintenance window", listed["pausable"]

    def slot_passed_while_paused() -> bool:  # the other deployment proves the scheduler woke
        return any(at(r["scheduled_at"]) > paused_at for r in runs(home, "every-minute")
                   if r["trigger"] == "schedule")  # fmt: skip

    wait_for(slot_passed_while_paused, "a slot to pass while pausable is paused", 75)
    unpaused_at = now()
    ok(home, "deployments", "unpause", "pausable")
    unpause_done = now()
    after = deployment(home, "pausable")
    assert after["status"] == "active" and after["paused_reason"] is None, after
    assert at(after["next"][0]["utc"]) > unpaused_at, f"unpause backfills: {after['next']}"

    def fired_after_unpause() -> list[dict[str, Any]]:
        return [r for r in runs(home, "pausable") if at(r["scheduled_at"]) > paused_at]

    since_pause = wait_for(fired_after_unpause, "the first slot after unpause to fire", 75)
    in_pause = [
        r for r in runs(home, "pausable") if paused_at < at(r["scheduled_at"]) < unpaused_at
    ]
    assert in_pause == [], f"runs for slots passed while paused: {in_pause}"
    assert len(since_pause) == 1, f"more than one run since the pause: {since_pause}"
    assert since_pause[0]["trigger"] == "schedule", since_pause
    first_slots = {next_minute(unpaused_at), next_minute(unpause_done)}
    assert at(since_pause[0]["scheduled_at"]) in first_slots, (
        f"the first run after unpause is not the first slot after it: {since_pause}")  # fmt: skip


def test_a_deployment_every_minute_runs_once_a_minute_with_two_services_on_one_database(
    env: Env,
) -> None:
    home = env.home
    assert "control_socket_taken" in env.b.log_text(), "the second service took the socket"
    assert "control_socket_taken" not in env.a.log_text()

    def two_finished() -> list[dict[str, Any]] | None:
        done = [r for r in runs(home, "every-minute")
                if r["status"] not in ("pending", "running")]  # fmt: skip
        return done if len(done) >= 2 else None

    done = wait_for(two_finished, "two scheduled runs of every-minute to finish", 150)
    slots = [at(r["scheduled_at"]) for r in done]
    assert {r["trigger"] for r in done} == {"schedule"}, done
    assert {r["status"] for r in done} == {"succeeded"}, done
    assert [s for s, n in Counter(slots).items() if n > 1] == [], f"a slot ran twice: {done}"
    assert all(s.second == 0 and s.microsecond == 0 for s in slots), f"not on minutes: {slots}"
    ordered = sorted(slots)
    gaps = {later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False)}
    assert gaps == {MINUTE}, f"slots were skipped between runs: {ordered}"
    fired = Counter(fire_log_ids(env.a, env.b))
    assert {r["id"] for r in done} <= set(fired), f"runs no scheduler logged: {fired}"
    assert [i for i, n in fired.items() if n > 1] == [], f"two schedulers fired one run: {fired}"
    for r in done:
        shown = run_show(home, r["id"])
        log = Path(shown["paths"]["output_log"])
        assert log.read_text() == "tick from the schedule\n", f"{r['id']}: {log.read_text()!r}"
    newest = json.loads(ok(home, "deployments", "list", "--json"))
    last = {d["name"]: d["last_run"] for d in newest}["every-minute"]
    assert last is not None and last["id"] in {r["id"] for r in runs(home, "every-minute")}
