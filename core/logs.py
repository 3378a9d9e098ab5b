"""Structured logs: one JSON line per unit of work, keys defined here and nowhere else.

Secret values never reach a logger: events carry secret *names* only.
"""

from __future__ import annotations

import sys
from typing import IO, Any

# Stable snake_case keys of the canonical log lines.
EVENT = "event"
RUN_ID = "run_id"
METHOD = "method"
HOST = "host"
PORT = "port"
PATH = "path"
STATUS = "status"
DECISION = "decision"
REASON = "reason"
SECRETS_INJECTED = "secrets_injected"
LEAKED_PLACEHOLDERS = "leaked_placeholders"
DURATION_MS = "duration_ms"
EXIT_CODE = "exit_code"
IMAGE = "image"
SECRETS = "secrets"

AUDIT_EVENT = "proxy_request"
LEAK_EVENT = "placeholder_leak"
RUN_EVENT = "run"


def json_logger(stream: IO[str] | None = None) -> Any:
    """A structlog logger that writes one JSON object a line to ``stream`` (stderr by default).

    structlog is imported here, not at module level: it costs ~90 ms, and `coatcheck run`
    needs it only with --log-json.
    """
    import structlog

    out = stream if stream is not None else sys.stderr
    return structlog.wrap_logger(
        structlog.WriteLogger(out),  # type: ignore[arg-type]
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=True,
    )
