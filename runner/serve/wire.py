"""The messages between the ``coatcheck deploy`` / ``deployments`` commands and a running
``coatcheck serve``: one JSON object a line over the service's private Unix socket
(``$COATCHECK_HOME/serve/control.sock``, 0600 in a 0700 directory: only its owner can ask).

    request  {"op": OP, "name": ..., "note": ..., "job_toml": ..., "job_base": ...,
              "source": ...}
    reply    {"ok": true, ...} | {"ok": false, "error": message, "exit_code": n}

One type, one encoder (``Request.encode``), one decoder (``Request.decode``), which checks every
field and raises ``UsageError``: the service never acts on a half-understood request.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from core.errors import CoatcheckError, UsageError
from core.unixline import Unreachable, exchange

OPS: Final = ("ping", "deploy", "pause", "unpause", "archive", "run", "token", "webhook")
MAX_LINE: Final = 4 * 1024 * 1024
NOT_RUNNING: Final = (
    "coatcheck serve is not running for this COATCHECK_HOME; start it (`coatcheck serve`, or "
    "its systemd unit) and try again. Reading history (`coatcheck runs`, `coatcheck "
    "deployments list`) works without it"
)


class ServiceUnavailable(CoatcheckError):
    """No ``coatcheck serve`` answers on the control socket."""


class Refused(CoatcheckError):
    """The service answered, and said no (the message says why and how to fix it)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    name: str = ""
    note: str | None = None
    job_toml: str | None = None  # deploy: the job file's text
    job_base: str | None = None  # deploy: where its relative paths start
    source: str | None = None  # deploy: the job file's path, for messages

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Request:
        try:
            obj = json.loads(line)
        except ValueError:
            raise UsageError("a control request must be one JSON object") from None
        if not isinstance(obj, dict):
            raise UsageError("a control request must be one JSON object")
        if obj.get("op") not in OPS:
            raise UsageError(f"unknown op {obj.get('op')!r}; one of {', '.join(OPS)}")
        unknown = set(obj) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown fields {sorted(unknown)} in a control request")
        for key in ("name",):
            if not isinstance(obj.get(key, ""), str):
                raise UsageError(f"{key} must be a string")
        for key in ("note", "job_toml", "job_base", "source"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise UsageError(f"{key} must be a string")
        if obj["op"] != "ping" and not obj.get("name"):
            raise UsageError(f"{obj['op']} needs a deployment name")
        if obj["op"] == "deploy" and not (obj.get("job_toml") and obj.get("job_base")):
            raise UsageError("deploy needs job_toml and job_base")
        return cls(**obj)


def ok(**fields: Any) -> bytes:
    return json.dumps({"ok": True, **fields}, default=str).encode() + b"\n"


def refusal(exc: CoatcheckError) -> bytes:
    reply = {"ok": False, "error": exc.message, "exit_code": exc.exit_code}
    return json.dumps(reply).encode() + b"\n"


def call(path: Path, request: Request, *, timeout: float = 30.0) -> dict[str, Any]:
    """Send ``request`` to the service at ``path``; its reply, or ``ServiceUnavailable`` /
    ``Refused`` (with the service's message and exit code)."""
    try:
        buf = exchange(path, request.encode(), timeout=timeout, max_line=MAX_LINE)
    except Unreachable:
        raise ServiceUnavailable(NOT_RUNNING) from None
    except TimeoutError:
        raise ServiceUnavailable(f"coatcheck serve at {path} did not answer in time") from None
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ServiceUnavailable(f"coatcheck serve at {path} sent a garbled reply") from None
    if not isinstance(reply, dict):
        raise ServiceUnavailable(f"coatcheck serve at {path} sent a garbled reply")
    if not reply.get("ok"):
        raise Refused(str(reply.get("error", "refused")), int(reply.get("exit_code", 1)))
    return reply
