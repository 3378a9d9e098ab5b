"""The messages between ``coatcheck run`` and the proxy service: one type each, one encoder, one
decoder, on the line protocol of :mod:`core.wire` (whose helpers are re-exported here).

A registration names secrets and placeholders, never a real value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import UsageError
from core.wire import (
    MAX_LINE,
    ON_LEAK,
    OPS,
    decode,
    encode,
    op_of,
    ping,
    refusal,
    registration_fields,
    text,
    unregister,
)

__all__ = [
    "MAX_LINE", "ON_LEAK", "OPS", "Registered", "Registration", "decode", "encode", "op_of",
    "ping", "refusal", "unregister",
]  # fmt: skip


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
        return cls(**registration_fields(obj))


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
            text(obj, "socket"), text(obj, "run_dir"), {str(k): str(v) for k, v in phs.items()}
        )
