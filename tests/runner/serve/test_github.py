"""GitHub webhooks: the signature on the raw body, hostile payloads, and the filter table."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

import pytest

from runner.serve.github import (
    MAX_BODY,
    Delivery,
    Match,
    Rejected,
    match,
    parse_delivery,
    signature_ok,
)

# https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
VECTOR_SECRET = b"It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
DELIVERY_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def headers(event: str = "push", **more: str) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": DELIVERY_ID, **more}


def test_githubs_published_test_vector():
    assert signature_ok(VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        (b"It's a Secret to Everybody!", VECTOR_BODY, VECTOR_SIG),
        (b"", VECTOR_BODY, VECTOR_SIG),
        (VECTOR_SECRET, b"Hello, World?", VECTOR_SIG),
        (VECTOR_SECRET, VECTOR_BODY + b" ", VECTOR_SIG),
        (VECTOR_SECRET, VECTOR_BODY, None),
        (VECTOR_SECRET, VECTOR_BODY, ""),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG.removeprefix("sha256=")),
        (VECTOR_SECRET, VECTOR_BODY,
         "sha1=" + hmac.new(VECTOR_SECRET, VECTOR_BODY, hashlib.sha1).hexdigest()),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG[:-1]),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG + "0"),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG.upper()),
        (VECTOR_SECRET, VECTOR_BODY, VECTOR_SIG[:-1] + "g"),
        (VECTOR_SECRET, VECTOR_BODY, f"{VECTOR_SIG},{VECTOR_SIG}"),
    ],
    ids=[
        "wrong-secret", "empty-secret", "tampered-body", "appended-byte", "missing-header",
        "empty-header", "no-algorithm", "sha1", "short-hex", "long-hex", "uppercase-prefix",
        "not-hex", "two-signatures",
    ],
)  # fmt: skip
def test_bad_signatures_are_refused(secret, body, header):
    assert signature_ok(secret, body, header) is False


def test_the_body_cap_is_one_mebibyte_and_an_oversized_body_is_refused_even_signed():
    assert MAX_BODY == 1024 * 1024
    body = b"{" + b" " * MAX_BODY + b"}"
    assert signature_ok(b"s", body, sign(b"s", body)) is False
    assert parse_delivery(headers(), body) == Rejected(f"payload over {MAX_BODY} bytes", 413)
    fits = b" " * (MAX_BODY - 2) + b"{}"
    assert signature_ok(b"s", fits, sign(b"s", fits))


def test_a_delivery_is_parsed_from_headers_and_payload():
    payload = {
        "action": "opened",
        "repository": {"full_name": "Octo/Hello"},
        "sender": {"login": "octocat"},
        "extra": [1, {"deep": None}],
    }
    got = parse_delivery(
        {"x-github-event": "pull_request", "x-github-delivery": DELIVERY_ID},
        json.dumps(payload).encode(),
    )
    assert got == Delivery("pull_request", DELIVERY_ID, "opened", "Octo/Hello", "octocat")
    assert not got.is_ping


def test_a_ping_is_recognised_and_never_matches():
    got = parse_delivery(headers("ping"), b'{"zen": "Keep it logically awesome."}')
    assert isinstance(got, Delivery) and got.is_ping
    assert match(got, Filters(events=("*", "ping"))) == Match(
        False, "ping is answered and starts no run"
    )


@pytest.mark.parametrize(
    ("hdrs", "body", "reason"),
    [
        ({"X-GitHub-Delivery": DELIVERY_ID}, b"{}", "X-GitHub-Event"),
        (headers("Push; rm"), b"{}", "X-GitHub-Event"),
        ({"X-GitHub-Event": "push"}, b"{}", "X-GitHub-Delivery"),
        (headers() | {"X-GitHub-Delivery": "x" * 65}, b"{}", "X-GitHub-Delivery"),
        (headers() | {"X-GitHub-Delivery": "../../etc"}, b"{}", "X-GitHub-Delivery"),
        (headers(**{"Content-Type": "application/x-www-form-urlencoded"}), b"payload=%7B%7D",
         "application/json"),
        (headers(), b"", "not valid JSON"),
        (headers(), b"{", "not valid JSON"),
        (headers(), b"\xff\xfe{}", "not valid JSON"),
        (headers(), b"1" * 5000, "not valid JSON"),
        (headers(), b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (headers(), b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
        (headers(), b"[]", "not a JSON object"),
        (headers(), b'"push"', "not a JSON object"),
        (headers(), b"null", "not a JSON object"),
        (headers(), b'{"action": 1}', "action must be"),
        (headers(), b'{"action": ""}', "action must be"),
        (headers(), b'{"action": ["opened"]}', "action must be"),
        (headers(), json.dumps({"action": "a" * 257}).encode(), "action must be"),
        (headers(), b'{"repository": "octo/hello"}', "repository.full_name is not an object"),
        (headers(), b'{"repository": {"full_name": {"x": 1}}}', "repository.full_name must be"),
        (headers(), b'{"sender": [{"login": "x"}]}', "sender.login is not an object"),
        (headers(), b'{"sender": {"login": 7}}', "sender.login must be"),
    ],
    ids=[
        "no-event", "bad-event", "no-delivery-id", "long-delivery-id", "path-delivery-id",
        "form-encoded", "empty-body", "truncated", "not-utf8", "huge-integer", "deep-arrays",
        "deep-objects", "array", "string", "null", "action-number", "action-empty",
        "action-list", "action-long", "repository-string", "full-name-object",
        "sender-list", "login-number",
    ],
)  # fmt: skip
def test_hostile_deliveries_are_rejected_with_a_reason(hdrs, body, reason):
    got = parse_delivery(hdrs, body)
    assert isinstance(got, Rejected) and got.status == 400
    assert reason in got.reason


def test_absent_or_null_fields_are_none():
    got = parse_delivery(headers(), b'{"action": null, "repository": null}')
    assert got == Delivery("push", DELIVERY_ID)


@dataclass(frozen=True)
class Filters:
    events: tuple[str, ...] = ("push",)
    actions: tuple[str, ...] | None = None
    repository: str | None = None
    ignore_senders: tuple[str, ...] = ()


PUSH = Delivery("push", DELIVERY_ID, None, "Octo/Hello", "alice")
OPENED = Delivery("pull_request", DELIVERY_ID, "opened", "octo/hello", "alice")
ORG = Delivery("member", DELIVERY_ID, "added", None, "alice")


@pytest.mark.parametrize(
    ("delivery", "filters", "ok", "reason"),
    [
        (PUSH, Filters(), True, "matched"),
        (PUSH, Filters(events=("*",)), True, "matched"),
        (PUSH, Filters(events=()), False, "event push is not in"),
        (OPENED, Filters(), False, "event pull_request is not in"),
        (OPENED, Filters(events=("pull_request",), actions=("opened", "x")), True, "matched"),
        (OPENED, Filters(events=("pull_request",), actions=("closed",)), False, "action opened"),
        (PUSH, Filters(actions=("opened",)), False, "action None"),
        (PUSH, Filters(repository="octo/hello"), True, "matched"),
        (OPENED, Filters(events=("*",), repository="OCTO/Hello"), True, "matched"),
        (PUSH, Filters(repository="octo/other"), False, "repository Octo/Hello is not"),
        (PUSH, Filters(repository="octo"), False, "repository Octo/Hello is not"),
        (ORG, Filters(events=("member",), repository="octo/hello"), False, "repository None"),
        (ORG, Filters(events=("member",)), True, "matched"),
        (PUSH, Filters(ignore_senders=("bot", "Alice")), False, "sender alice is ignored"),
        (PUSH, Filters(ignore_senders=("alice-bot",)), True, "matched"),
        (Delivery("push", DELIVERY_ID), Filters(ignore_senders=("alice",)), True, "matched"),
    ],
    ids=[
        "event-listed", "any-event", "no-events", "event-not-listed", "action-listed",
        "action-not-listed", "actions-but-none-sent", "same-repo", "repo-case-insensitive",
        "other-repo", "repo-prefix", "org-event-with-repo-filter", "org-event-no-filter",
        "own-bot-ignored", "similar-sender-not-ignored", "no-sender",
    ],
)  # fmt: skip
def test_filters(delivery, filters, ok, reason):
    got = match(delivery, filters)
    assert got.ok is ok and reason in got.reason
    matched, why = got  # unpacks as (bool, reason)
    assert (matched, why) == (got.ok, got.reason)
