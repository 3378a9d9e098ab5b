"""The messages between ``coatcheck run`` and the proxy service: one type each, one encoder, one
decoder. They travel as one JSON object a line, over the service's control socket (shared
service) or the ephemeral service's stdin and stdout.

    request  {"op": "ping"} | {"op": "register", <Registration>} | {"op": "unregister", "run_id"}
    reply    {"ok": true, ...} | {"ok": false, "error": message}

Decoding checks every field's type and raises ``UsageError`` with what is wrong: the service
never works from a half-understood request. A registration names secrets and placeholders,
never a real value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import UsageError

OPS = ("ping", "register", "unregister")
ON_LEAK = ("log", "block")


@dataclass(frozen=True, slots=True)
class Registration:
    """A run, as the runner tells the proxy about it."""

    run_id: str
    secrets: Mapping[str, str] = field(default_factory=dict)  # name -> placeholder
    allow: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()  # HOST:ADDR
    allow_cidr: tuple[str, ...] = ()
    upstream_ca_pem: tuple[str, ...] = ()
    on_leak: str = "log"
    owner_pid: int | None = None
    allow_opaque: tuple[str, ...] = ()  # host patterns spliced without interception

    def to_json(self) -> dict[str, Any]:
        return {
            "op": "register",
            "run_id": self.run_id,
            "secrets": dict(self.secrets),
            "allow": list(self.allow),
            "resolve": list(self.resolve),
            "allow_cidr": list(self.allow_cidr),
            "upstream_ca_pem": list(self.upstream_ca_pem),
            "on_leak": self.on_leak,
            "owner_pid": self.owner_pid,
            "allow_opaque": list(self.allow_opaque),
        }

    def encode(self) -> bytes:
        return encode(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Registration:
        secrets = obj.get("secrets", {})
        if not isinstance(secrets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
        ):
            raise UsageError("registration: secrets must map secret names to placeholders")
        owner = obj.get("owner_pid")
        if owner is not None and (not isinstance(owner, int) or isinstance(owner, bool)):
            raise UsageError("registration: owner_pid must be a process id")
        on_leak = obj.get("on_leak", "log")
        if on_leak not in ON_LEAK:
            raise UsageError(f"--on-leak {on_leak!r}: use one of {', '.join(ON_LEAK)}")
        return cls(
            run_id=_text(obj, "run_id"),
            secrets=dict(secrets),
            allow=_texts(obj, "allow"),
            resolve=_texts(obj, "resolve"),
            allow_cidr=_texts(obj, "allow_cidr"),
            upstream_ca_pem=_texts(obj, "upstream_ca_pem"),
            on_leak=on_leak,
            owner_pid=owner,
            allow_opaque=_texts(obj, "allow_opaque"),
        )


@dataclass(frozen=True, slots=True)
class Registered:
    """The service's answer to a registration."""

    socket: str
    run_dir: str
    placeholders: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "socket": self.socket,
            "run_dir": self.run_dir,
            "placeholders": dict(self.placeholders),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Registered:
        phs = obj.get("placeholders", {})
        if not isinstance(phs, Mapping):
            raise UsageError("registration reply: placeholders must be a mapping")
        return cls(
            _text(obj, "socket"), _text(obj, "run_dir"), {str(k): str(v) for k, v in phs.items()}
        )


def ping() -> dict[str, Any]:
    return {"op": "ping"}


def unregister(run_id: str) -> dict[str, Any]:
    return {"op": "unregister", "run_id": run_id}


def refusal(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def encode(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes | str) -> dict[str, Any]:
    """One line into a JSON object; UsageError for anything else."""
    try:
        obj = json.loads(line)
    except ValueError:
        raise UsageError("bad control message: not JSON") from None
    if not isinstance(obj, dict):
        raise UsageError("bad control message: not a JSON object")
    return obj


def op_of(obj: Mapping[str, Any]) -> str:
    op = obj.get("op")
    if op not in OPS:
        raise UsageError(f"unknown control op {op!r}; use one of {', '.join(OPS)}")
    return str(op)


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise UsageError(f"control message: {key} must be a string")
    return value


def _texts(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"control message: {key} must be a list of strings")
    return tuple(value)
