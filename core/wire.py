"""The control protocol on the wire: one JSON object a line, between ``coatcheck run`` and
the proxy service, over the service's control socket (shared service) or the ephemeral
service's stdin and stdout. :mod:`core.messages` has the typed messages, built on this.

    request  {"op": "ping"} | {"op": "register", <registration>} | {"op": "unregister", "run_id"}
    reply    {"ok": true, ...} | {"ok": false, "error": message}

Decoding checks every field's type and raises ``UsageError`` with what is wrong: the service
never works from a half-understood request. It imports json and nothing heavier (no
dataclasses: inspect and ast are 1.3 MB): the proxy's coordinator, which lives as long as the
service, uses this alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from core.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OPS = ("ping", "register", "unregister")
ON_LEAK = ("log", "block")
MAX_LINE = 4 * 1024 * 1024  # the longest line either end reads


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


def ping() -> dict[str, Any]:
    return {"op": "ping"}


def unregister(run_id: str) -> dict[str, Any]:
    return {"op": "unregister", "run_id": run_id}


def refusal(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def registration_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a registration request (``core.messages.Registration``), each checked."""
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
    return {
        "run_id": text(obj, "run_id"),
        "secrets": dict(secrets),
        "allow": texts(obj, "allow"),
        "resolve": texts(obj, "resolve"),
        "allow_cidr": texts(obj, "allow_cidr"),
        "upstream_ca_pem": texts(obj, "upstream_ca_pem"),
        "on_leak": on_leak,
        "owner_pid": owner,
        "allow_opaque": texts(obj, "allow_opaque"),
    }


def text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise UsageError(f"control message: {key} must be a string")
    return value


def texts(obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"control message: {key} must be a list of strings")
    return tuple(value)
