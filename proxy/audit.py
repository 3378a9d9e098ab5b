"""The audit trail: one JSON line per request the proxy decided on, never a value.

Keys come from core.logs. A line names the run, the method, the real destination host, the
path without its query, the status, the decision and its reason, and the *names* of the secrets
injected. Leak signals are separate ``placeholder_leak`` lines. What the addon knows of a request
comes from its :class:`~proxy.flowstate.FlowState`; a failure in a connection hook, with no
request to name, gets a line of its own (:meth:`Audit.failure`), and so do connections closed
over a run's cap: one line counts many (:meth:`Audit.connections_refused`). An opaque tunnel
(``--allow-opaque``) gets one line when it ends, with its bytes each way (:meth:`Audit.opaque`).
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from core import logs
from proxy.flowstate import FlowState, state_of
from proxy.policy import Decision
from proxy.reasons import Reason

REFUSED_CONNECTIONS = "refused_connections"  # how many a ``too_many_connections`` line counts
# an opaque tunnel's line (Audit.opaque): the address dialled, the TLS bytes each way
ADDRESS, BYTES_UP, BYTES_DOWN = "address", "bytes_up", "bytes_down"


class Audit:
    def __init__(self, stream: IO[str]) -> None:
        self._log = logs.json_logger(stream)
        self._lock = threading.Lock()
        self._stream = stream

    def _emit(self, event: str, **kw: Any) -> None:
        with self._lock:
            self._log.info(event, **kw)
            self._stream.flush()

    def request(
        self,
        flow: Any,
        run: Any,
        decision: Any,
        *,
        status: int,
        error: str = "",
        once: bool = False,
    ) -> None:
        """The request's line; with ``once``, only if none was written for it yet."""
        req = flow.request
        state = state_of(flow.metadata)
        if once and state.audited:
            return
        final = state.decision if state.decision is not None else decision
        host, port = _dest(flow, state)
        kw: dict[str, Any] = {
            logs.RUN_ID: run.run_id if run is not None else None,
            logs.METHOD: req.method,
            logs.HOST: host,
            logs.PORT: port,
            logs.PATH: req.path.split("?", 1)[0],
            logs.STATUS: status,
            logs.DECISION: ("allow" if final.allowed else "deny") if final else "deny",
            logs.REASON: final.reason if final else Reason.UNCHECKED,
            # a request that never left carried no value, whatever was swapped into it
            logs.SECRETS_INJECTED: list(state.injected) if state.forwarded else [],
        }
        if state.start is not None:
            kw[logs.DURATION_MS] = round((time.monotonic() - state.start) * 1000, 2)
        if error:
            kw["error"] = error
        self._emit(logs.AUDIT_EVENT, **kw)
        state.audited = True

    def failure(
        self, run_id: str | None, decision: Decision, *, host: str | None, port: int | None
    ) -> None:
        """A connection-level hook failed: no request to name, only the connection's run and
        destination (when known)."""
        self._emit(
            logs.AUDIT_EVENT,
            **{
                logs.RUN_ID: run_id,
                logs.METHOD: None,
                logs.HOST: host,
                logs.PORT: port,
                logs.PATH: None,
                logs.STATUS: 0,
                logs.DECISION: "allow" if decision.allowed else "deny",
                logs.REASON: decision.reason,
                logs.SECRETS_INJECTED: [],
                "error": decision.detail,
            },
        )

    def connections_refused(self, run_id: str, decision: Decision, count: int) -> None:
        """Connections of a run over its cap were closed: ``count`` of them since the last
        such line (lines are rate-limited by the caller, never one per connection)."""
        self._emit(
            logs.AUDIT_EVENT,
            **{
                logs.RUN_ID: run_id,
                logs.METHOD: None,
                logs.HOST: None,
                logs.PATH: None,
                logs.STATUS: 0,
                logs.DECISION: "deny",
                logs.REASON: decision.reason,
                logs.SECRETS_INJECTED: [],
                REFUSED_CONNECTIONS: count,
                "error": decision.detail,
            },
        )

    def opaque(
        self,
        run_id: str,
        decision: Decision,
        *,
        host: str,
        port: int,
        status: int,
        address: str | None,
        bytes_up: int,
        bytes_down: int,
        duration_ms: float,
        error: str = "",
    ) -> None:
        """An opaque tunnel (:mod:`proxy.opaque`), when it ends or is refused: its destination,
        the address dialled and the bytes each way; there are no requests to name."""
        kw: dict[str, Any] = {
            logs.RUN_ID: run_id,
            logs.METHOD: "CONNECT",
            logs.HOST: host,
            logs.PORT: port,
            logs.PATH: None,
            logs.STATUS: status,
            logs.DECISION: "allow" if decision.allowed else "deny",
            logs.REASON: decision.reason,
            logs.SECRETS_INJECTED: [],
            ADDRESS: address,
            BYTES_UP: bytes_up,
            BYTES_DOWN: bytes_down,
            logs.DURATION_MS: round(duration_ms, 2),
        }
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
                logs.HOST: _dest(flow, state_of(flow.metadata))[0],
                logs.PATH: req.path.split("?", 1)[0],
                logs.LEAKED_PLACEHOLDERS: names,
            },
        )


def _dest(flow: Any, state: FlowState) -> tuple[str, int]:
    """The real destination (the tunnel's), not what the request's Host header claims."""
    if state.dest is not None:
        return state.dest
    return (str(flow.request.host), flow.request.port)
