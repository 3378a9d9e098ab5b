"""The audit trail: one JSON line per request the proxy decided on, never a value.

Keys come from core.logs. A line names the run, the method, the real destination host, the
path without its query, the status, the decision and its reason, and the *names* of the secrets
injected. Leak signals are separate ``placeholder_leak`` lines.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from core import logs


class Audit:
    def __init__(self, stream: IO[str]) -> None:
        self._log = logs.json_logger(stream)
        self._lock = threading.Lock()
        self._stream = stream

    def _emit(self, event: str, **kw: Any) -> None:
        with self._lock:
            self._log.info(event, **kw)
            self._stream.flush()

    def request(self, flow: Any, run: Any, decision: Any, *, status: int, error: str = "") -> None:
        req = flow.request
        started = flow.metadata.get("cc_start")
        final = flow.metadata.get("cc_decision", decision)
        kw: dict[str, Any] = {
            logs.RUN_ID: run.run_id if run is not None else None,
            logs.METHOD: req.method,
            logs.HOST: _dest(flow)[0],
            logs.PORT: _dest(flow)[1],
            logs.PATH: req.path.split("?", 1)[0],
            logs.STATUS: status,
            logs.DECISION: ("allow" if final.allowed else "deny") if final else "deny",
            logs.REASON: final.reason if final else (error or "unchecked"),
            logs.SECRETS_INJECTED: flow.metadata.get("cc_injected", []),
        }
        if started is not None:
            kw[logs.DURATION_MS] = round((time.monotonic() - started) * 1000, 2)
        if error:
            kw["error"] = error
        self._emit(logs.AUDIT_EVENT, **kw)

    def leak(self, flow: Any, run: Any, names: list[str]) -> None:
        req = flow.request
        self._emit(
            logs.LEAK_EVENT,
            **{
                logs.RUN_ID: run.run_id if run is not None else None,
                logs.METHOD: req.method,
                logs.HOST: _dest(flow)[0],
                logs.PATH: req.path.split("?", 1)[0],
                logs.LEAKED_PLACEHOLDERS: names,
            },
        )


def _dest(flow: Any) -> tuple[str, int]:
    """The real destination (the tunnel's), not what the request's Host header claims."""
    dest = flow.metadata.get("cc_dest")
    return (str(dest[0]), int(dest[1])) if dest else (str(flow.request.host), flow.request.port)
