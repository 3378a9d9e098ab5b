"""The public HTTP API: every status of /fire, /run and /github, against an in-memory Firing."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from runner.serve import github
from runner.serve.firing import Fired, Target
from runner.serve.public import public_app
from runner.serve.tokens import new_token, token_hash

TOKEN, OTHER_TOKEN = new_token(), new_token()
SECRET = b"It's a Secret to Everybody"
VECTOR_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
DELIVERY_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
PUSH = json.dumps(
    {"ref": "refs/heads/main", "repository": {"full_name": "acme/widgets"},
     "sender": {"login": "octocat"}, "note": "BODY-MARKER"}
).encode()  # fmt: skip


@dataclass(frozen=True)
class Filters:
    events: tuple[str, ...] = ("push",)
    actions: tuple[str, ...] | None = None
    repository: str | None = "acme/widgets"
    ignore_senders: tuple[str, ...] = ("coatcheck[bot]",)


def target(name: str = "nightly", **over: Any) -> Target:
    fields: dict[str, Any] = {
        "status": "active", "token_hash": token_hash(TOKEN), "webhook_secret": SECRET,
        "github": Filters(), "allow_when_paused": False,
    }  # fmt: skip
    return Target(name=name, **{**fields, **over})


TARGETS = (
    target(), target("other", token_hash=token_hash(OTHER_TOKEN)),
    target("archived", status="archived"), target("untokened", token_hash=None),
    target("paused", status="paused"),
    target("paused-allowed", status="paused", allow_when_paused=True),
    target("unhooked", webhook_secret=None), target("no-filters", github=None),
    target("other-repo", github=Filters(repository="acme/gadgets")),
    target("bot", github=Filters(ignore_senders=("OctoCat",))),
)  # fmt: skip


def table(names: str, rows: dict[str, tuple[Any, ...]]) -> Any:
    """A parametrize mark from ``{readable id: row}``."""
    values = [r[0] if "," not in names else r for r in rows.values()]
    return pytest.mark.parametrize(names, values, ids=list(rows))


@dataclass
class FakeFiring:
    """Targets by name; `fire` dedupes on (name, key) like the scheduler, or replays `script`."""

    targets: dict[str, Target]
    script: list[Fired] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[tuple[str, str], str] = field(default_factory=dict)
    created: int = 0

    def lookup(self, name: str) -> Target | None:
        return self.targets.get(name)

    def fire(self, name: str, *, trigger: str, actor: str, key: str | None, body: bytes | None):
        self.calls.append(dict(name=name, trigger=trigger, actor=actor, key=key, body=body))
        if self.script:
            return self.script.pop(0)
        if key is not None and (name, key) in self.runs:
            return Fired(self.runs[name, key], created=False)
        self.created += 1
        if key is not None:
            self.runs[name, key] = f"run-{self.created}"
        return Fired(f"run-{self.created}")


class ListLog(list[dict[str, Any]]):
    def info(self, event: str, **kw: Any) -> None:
        self.append({"event": event, **kw})


def setup(script: list[Fired] | None = None) -> tuple[FakeFiring, ListLog, TestClient]:
    firing, log = FakeFiring({t.name: t for t in TARGETS}, script=list(script or [])), ListLog()
    return firing, log, TestClient(public_app(firing, log=log), raise_server_exceptions=False)


def auth(token: str = TOKEN, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def hook(body: bytes = PUSH, event: str = "push", **more: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": event, "X-GitHub-Delivery": DELIVERY_ID,
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(body), **more,
    }  # fmt: skip


# --- the API trigger ------------------------------------------------------------------------

KEY = "Idempotency-Key"
FIRED = {"run_id": "run-1", "created": True}


@table("route, name, headers, status", {
    "fires": ("fire", "nightly", auth(), 202),
    "run-alias": ("run", "nightly", auth(), 202),
    "unknown-deployment": ("fire", "missing", auth(), 404),
    "archived": ("fire", "archived", auth(), 410),
    "missing-token": ("fire", "nightly", {}, 401),
    "wrong-token": ("fire", "nightly", auth(OTHER_TOKEN), 401),
    "token-plus-a-char": ("fire", "nightly", auth(TOKEN + "x"), 401),
    "basic-scheme": ("fire", "nightly", {"Authorization": f"Basic {TOKEN}"}, 401),
    "two-spaces": ("fire", "nightly", {"Authorization": f"Bearer  {TOKEN}"}, 401),
    "token-of-another-deployment": ("fire", "other", auth(TOKEN), 401),
    "no-token-configured": ("fire", "untokened", auth(), 401),
    "paused": ("fire", "paused", auth(), 409),
    "paused-but-allowed": ("fire", "paused-allowed", auth(), 202),
    "key-with-space": ("fire", "nightly", auth(**{KEY: "has space"}), 400),
    "key-too-long": ("fire", "nightly", auth(**{KEY: "x" * 256}), 400),
    "key-empty": ("fire", "nightly", auth(**{KEY: ""}), 400),
    "key-longest": ("fire", "nightly", auth(**{KEY: "x" * 255}), 202),
})  # fmt: skip
def test_api_statuses(route, name, headers, status):
    firing, _, client = setup()
    answer = client.post(f"/v1/deployments/{name}/{route}", headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json() == FIRED if status == 202 else set(answer.json()) == {"error"}
    assert TOKEN not in answer.text
    assert [(c["name"], c["trigger"]) for c in firing.calls] == [(name, "api")] * (status == 202)
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_the_body_is_handed_over_raw_and_an_empty_one_as_none():
    firing, _, client = setup()
    client.post("/v1/deployments/nightly/fire", headers=auth())
    client.post("/v1/deployments/nightly/fire", headers=auth(), content=b"fix {issue} \xff")
    assert [c["body"] for c in firing.calls] == [None, b"fix {issue} \xff"]


@table("route, headers, again", {
    "idempotency-key": ("fire", auth(**{KEY: "deploy-2024-06-01"}), (202, "created")),
    "github-delivery": ("github", hook(), (200, "duplicate")),
})  # fmt: skip
def test_a_replay_returns_the_same_run_once(route, headers, again):
    firing, _, client = setup()
    answers = [client.post(f"/v1/deployments/nightly/{route}", headers=headers, content=PUSH)
               for _ in range(2)]  # fmt: skip
    assert answers[0].status_code == 202 and answers[0].json() == FIRED
    assert answers[1].status_code == again[0]
    assert answers[1].json() == {"run_id": "run-1", again[1]: again[1] == "duplicate"}
    assert firing.created == 1 and firing.calls[1]["key"] == firing.calls[0]["key"] is not None


CAP = github.MAX_BODY


@table("route, size, streamed, status", {
    "api-at-the-cap": ("fire", CAP, False, 202), "api-one-over": ("fire", CAP + 1, False, 413),
    "api-streamed-at-the-cap": ("fire", CAP, True, 202),
    "api-streamed-one-over": ("fire", CAP + 1, True, 413),
    "api-streamed-10x": ("fire", 10 * CAP, True, 413),
    "github-at-the-cap": ("github", CAP, False, 202),
    "github-one-over-though-signed": ("github", CAP + 1, False, 413),
    "github-streamed-one-over": ("github", CAP + 1, True, 413),
})  # fmt: skip
def test_bodies_are_capped(route, size, streamed, status):
    firing, _, client = setup()
    body = PUSH.ljust(size)  # still valid JSON
    content = (body[i : i + 65536] for i in range(0, size, 65536)) if streamed else body
    headers = auth() if route == "fire" else hook(body)
    answer = client.post(f"/v1/deployments/nightly/{route}", headers=headers, content=content)
    assert answer.status_code == status and len(firing.calls) == (status == 202)


@table("fired, status, retry_after", {
    "daily-cap-rounds-up": (Fired(None, refused="daily_cap", retry_after=3600.2), 429, "3601"),
    "at-least-1s": (Fired(None, refused="min_interval", retry_after=0.01), 429, "1"),
    "no-hint": (Fired(None, refused="min_interval"), 429, "60"),
    "overlap": (Fired("skipped-7", refused="overlap"), 409, None),
    "overlap-no-row": (Fired(None, refused="overlap"), 409, None),
    "paused-meanwhile": (Fired(None, refused="paused"), 409, None),
    "archived-meanwhile": (Fired(None, refused="archived"), 410, None),
})  # fmt: skip
@pytest.mark.parametrize("trigger", ["api", "webhook"])
def test_refusals(trigger, fired, status, retry_after):
    _, log, client = setup(script=[fired])
    if trigger == "api":
        answer = client.post("/v1/deployments/nightly/fire", headers=auth())
    else:
        answer = client.post("/v1/deployments/nightly/github", headers=hook(), content=PUSH)
    assert answer.status_code == status
    assert answer.headers.get("Retry-After") == retry_after
    assert "error" in answer.json()
    if fired.refused == "overlap":
        assert answer.json()["run_id"] == fired.run_id and answer.json()["reason"] == "overlap"
    assert log[-1]["outcome"] == "refused" and log[-1]["reason"] == fired.refused


# --- the GitHub webhook ---------------------------------------------------------------------


def test_githubs_published_test_vector_passes_the_signature_step():
    """The vector's body is not JSON: a 400 from parsing proves the signature was accepted."""
    _, _, client = setup()
    body = b"Hello, World!"
    headers = hook(body, **{"X-Hub-Signature-256": VECTOR_SIG})
    answer = client.post("/v1/deployments/nightly/github", headers=headers, content=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": "payload is not valid JSON"}


BAD = b"{this is not json"


@table("signature", {
    "missing": (None,), "empty": ("",), "wrong-secret": (sign(BAD, b"another secret"),),
    "tampered-body": (sign(BAD + b" "),), "uppercase": (sign(BAD).upper(),),
    "no-prefix": (sign(BAD).removeprefix("sha256="),),
    "sha1": ("sha1=" + hmac.new(SECRET, BAD, "sha1").hexdigest(),),
    "another-body's": (VECTOR_SIG,),
})  # fmt: skip
def test_a_bad_signature_is_401_before_the_body_is_parsed(monkeypatch, signature):
    parsed: list[bytes] = []
    monkeypatch.setattr(github, "parse_delivery", lambda h, raw: parsed.append(raw))
    firing, _, client = setup()
    headers = {k: v for k, v in hook(BAD).items() if k != "X-Hub-Signature-256"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    answer = client.post("/v1/deployments/nightly/github", headers=headers, content=BAD)
    assert answer.status_code == 401
    assert firing.calls == [] and parsed == []
    assert SECRET.decode() not in answer.text


PING = {"ok": True, "ping": True}
NO_SENDER = json.dumps({"repository": {"full_name": "acme/widgets"}}).encode()
NO_HOOK = "no GitHub webhook is set up for this deployment; run coatcheck deployments webhook"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@table("name, headers, body, status, expected", {
    "fires": ("nightly", hook(), PUSH, 202, FIRED),
    "unknown-deployment": ("missing", hook(), PUSH, 404, None),
    "archived": ("archived", hook(), PUSH, 410, None),
    "no-webhook-secret": ("unhooked", hook(), PUSH, 404, {"error": f"{NO_HOOK} unhooked"}),
    "ping": ("nightly", hook(event="ping"), PUSH, 200, PING),
    "ping-while-paused": ("paused", hook(event="ping"), PUSH, 200, PING),
    "paused": ("paused", hook(), PUSH, 409, None),
    "paused-but-allowed": ("paused-allowed", hook(), PUSH, 202, FIRED),
    "event-not-listed": ("nightly", hook(event="issues"), PUSH, 200,
                         {"ignored": "event issues is not in trigger.github.events"}),
    "other-repository": ("other-repo", hook(), PUSH, 200,
                         {"ignored": "repository acme/widgets is not acme/gadgets"}),
    "ignored-sender": ("bot", hook(), PUSH, 200, {"ignored": "sender octocat is ignored"}),
    "no-filters": ("no-filters", hook(), PUSH, 200,
                   {"ignored": 'no [trigger.github] table; add one, e.g. events = ["push"]'}),
    "malformed-event": ("nightly", hook(event="Push!"), PUSH, 400, None),
    "form-encoded": ("nightly", hook(**FORM), PUSH, 400, None),
    "not-an-object": ("nightly", hook(b"[1]"), b"[1]", 400,
                      {"error": "payload is not a JSON object"}),
    "no-sender-fires-as-github": ("nightly", hook(NO_SENDER), NO_SENDER, 202, FIRED),
})  # fmt: skip
def test_webhook_statuses(name, headers, body, status, expected):
    firing, _, client = setup()
    answer = client.post(f"/v1/deployments/{name}/github", headers=headers, content=body)
    assert answer.status_code == status, answer.text
    assert answer.json() == expected if expected else set(answer.json()) == {"error"}
    assert len(firing.calls) == (status == 202)
    actor = json.loads(body)["sender"]["login"] if b"sender" in body else "github"
    expected_call = {"name": name, "trigger": "webhook", "actor": actor, "key": DELIVERY_ID}
    assert firing.calls[:1] in ([], [expected_call | {"body": body}])


# --- routes, errors and the canonical log line ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/health", 200), ("GET", "/nope", 404), ("GET", "/v1/deployments/x/fire", 405),
     ("PUT", "/v1/deployments/x/github", 405), ("POST", "/v1/health", 405)],
    ids=["health", "unknown-route", "get-fire", "put-github", "post-health"],
)  # fmt: skip
def test_routes_answer_json(method, path, status):
    _, log, client = setup()
    answer = client.request(method, path)
    assert answer.status_code == status
    assert set(answer.json()) == ({"ok"} if status == 200 else {"error"})
    if status == 405:
        allowed = answer.headers["Allow"]
        assert allowed in answer.json()["error"] and method not in allowed
    assert log[-1]["status"] == status


def test_a_failing_scheduler_is_a_json_500_and_logged():
    firing, log, client = setup()
    firing.fire = None  # type: ignore[assignment,method-assign]
    answer = client.post("/v1/deployments/nightly/fire", headers=auth())
    assert answer.status_code == 500 and "error" in answer.json()
    assert log[-1]["status"] == 500 and log[-1]["outcome"] == "error"


def test_one_line_per_request_without_tokens_secrets_signatures_or_bodies():
    _, log, client = setup()
    api_body = b"API-BODY-MARKER"
    client.post("/v1/deployments/nightly/fire", headers=auth(), content=api_body)
    client.post("/v1/deployments/nightly/fire", headers=auth(OTHER_TOKEN), content=api_body)
    client.post("/v1/deployments/nightly/github", headers=hook(), content=PUSH)
    client.post("/v1/deployments/nightly/github", headers=hook(BAD), content=PUSH)
    assert len(log) == 4
    assert log[0] == {
        "event": "http_request", "method": "POST", "path": "/v1/deployments/{name}/fire",
        "status": 202, "deployment": "nightly", "trigger": "api", "delivery": None,
        "run_id": "run-1", "outcome": "fired", "reason": None,
        "duration_ms": log[0]["duration_ms"],
    }  # fmt: skip
    reasons = [(x["status"], x["reason"]) for x in log[1:]]
    assert reasons == [(401, "bad_token"), (202, None), (401, "bad_signature")]
    assert log[2]["delivery"] == DELIVERY_ID
    text = json.dumps(log)
    for leak in (TOKEN, OTHER_TOKEN, SECRET.decode(), sign(PUSH), sign(BAD), "MARKER"):
        assert leak not in text


def test_the_default_logger_is_structlog():
    firing = FakeFiring({"nightly": target()})
    with capture_logs() as lines:
        TestClient(public_app(firing)).get("/v1/health")
    assert [(x["event"], x["status"], x["path"]) for x in lines] == [
        ("http_request", 200, "/v1/health")
    ]  # fmt: skip


def test_targets_do_not_show_their_secrets():
    shown = repr(replace(target(), webhook_secret=b"s3cret"))
    assert "s3cret" not in shown and token_hash(TOKEN) not in shown
