"""GitHub webhook deliveries: signature, parsing and filters (pure).

The HTTP adapter reads at most `MAX_BODY` bytes of the raw body (more is a 413), calls
`signature_ok` on those exact bytes **before** anything parses them, then `parse_delivery`,
answers a `ping` with 200, dedupes on `Delivery.delivery_id`, and calls `match` with the
deployment's ``[trigger.github]`` filters. Every refusal is a value with a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

# GitHub caps payloads at 25 MB; the events we run on are far smaller, and we refuse (413)
# anything over our own cap before reading further.
MAX_BODY = 1024 * 1024
MAX_FIELD = 256  # longest event, action, repository or sender name we accept

_SIGNATURE = re.compile(r"sha256=([0-9a-f]{64})")
_EVENT = re.compile(r"[a-z_]{1,64}")
# GitHub sends a GUID; accept any short token of letters, digits and dashes: it is a dedupe key
# and appears in logs, so it must be bounded and plain.
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_FORM = "application/x-www-form-urlencoded"


def signature_ok(secret: bytes, raw_body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature-256`` is ``sha256=`` + hex HMAC-SHA256(secret, raw_body).

    Fails closed: no secret, no header, another algorithm (``sha1=``), malformed hex or a body
    over `MAX_BODY` give False. The comparison is constant-time."""
    if not secret or header is None or len(raw_body) > MAX_BODY:
        return False
    found = _SIGNATURE.fullmatch(header.strip())
    if found is None:
        return False
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), found.group(1).encode("ascii"))


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery, reduced to what triggering needs."""

    event: str
    delivery_id: str
    action: str | None = None
    repository: str | None = None  # "owner/name"
    sender: str | None = None  # login

    @property
    def is_ping(self) -> bool:
        return self.event == "ping"


@dataclass(frozen=True)
class Rejected:
    """A delivery we refuse to parse: answer 400 with ``reason``."""

    reason: str
    status: int = 400


class Match(NamedTuple):
    """Whether a delivery starts a run, and why (unpacks as ``ok, reason``)."""

    ok: bool
    reason: str


class Filters(Protocol):
    """The ``[trigger.github]`` table: any object with these attributes will do."""

    @property
    def events(self) -> Sequence[str]: ...
    @property
    def actions(self) -> Sequence[str] | None: ...
    @property
    def repository(self) -> str | None: ...
    @property
    def ignore_senders(self) -> Sequence[str]: ...


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _field(payload: dict[str, Any], *path: str) -> str | None:
    """``payload[path[0]][path[1]]...`` when it is a string; None when absent or null.

    Raises ValueError when present with another type or over `MAX_FIELD` characters."""
    value: Any = payload
    for key in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(f"{'.'.join(path)} is not an object in the payload")
        value = value.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise ValueError(f"{'.'.join(path)} must be a non-empty string of {MAX_FIELD} or fewer")
    return value


def parse_delivery(headers: Mapping[str, str], raw_body: bytes) -> Delivery | Rejected:
    """A `Delivery` from the headers and the JSON body; call only after `signature_ok`.

    Hostile input (not JSON, not an object, deep nesting, wrong types) is a `Rejected` with
    the reason, never an exception."""
    event = _header(headers, "X-GitHub-Event")
    if event is None or not _EVENT.fullmatch(event):
        return Rejected("missing or malformed X-GitHub-Event header")
    delivery_id = _header(headers, "X-GitHub-Delivery")
    if delivery_id is None or not _DELIVERY_ID.fullmatch(delivery_id):
        return Rejected("missing or malformed X-GitHub-Delivery header")
    content_type = _header(headers, "Content-Type") or ""
    if content_type.split(";")[0].strip().lower() == _FORM:
        return Rejected("form-encoded payload: set the webhook's content type to application/json")
    if len(raw_body) > MAX_BODY:
        return Rejected(f"payload over {MAX_BODY} bytes", status=413)
    try:
        payload = json.loads(raw_body)
    except RecursionError:
        return Rejected("payload nested too deeply")
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        return Rejected("payload is not valid JSON")
    if not isinstance(payload, dict):
        return Rejected("payload is not a JSON object")
    try:
        return Delivery(
            event=event,
            delivery_id=delivery_id,
            action=_field(payload, "action"),
            repository=_field(payload, "repository", "full_name"),
            sender=_field(payload, "sender", "login"),
        )
    except ValueError as e:
        return Rejected(str(e))


def match(delivery: Delivery, filters: Filters) -> Match:
    """Whether ``delivery`` passes ``filters``: sender not ignored, event listed (``*`` lists
    all), action listed (when actions are given), repository equal ignoring case (when given).
    A ``ping`` never matches: the caller answers it with 200."""
    if delivery.is_ping:
        return Match(False, "ping is answered and starts no run")
    ignored = {s.lower() for s in filters.ignore_senders}
    if delivery.sender is not None and delivery.sender.lower() in ignored:
        return Match(False, f"sender {delivery.sender} is ignored")
    if "*" not in filters.events and delivery.event not in filters.events:
        return Match(False, f"event {delivery.event} is not in trigger.github.events")
    if filters.actions is not None and delivery.action not in filters.actions:
        return Match(False, f"action {delivery.action} is not in trigger.github.actions")
    if filters.repository is not None and (
        delivery.repository is None or delivery.repository.lower() != filters.repository.lower()
    ):
        return Match(False, f"repository {delivery.repository} is not {filters.repository}")
    return Match(True, "matched")
