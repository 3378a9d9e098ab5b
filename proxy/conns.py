"""A run's connections to its socket: how many, how idle, and the file descriptors for them.

The service hands every connection accepted on a run's socket to :meth:`RunConnections.serve`.
Over the run's cap (:class:`~proxy.limits.Limits`) it is closed at once, and the refusals
are reported sparingly: one audit line and one log line when they start, then one per
:data:`~proxy.limits.REPORT_INTERVAL_S` with the count, while they go on. Within the cap, the
connection goes to the proxy with a reader whose first bytes must come within the idle
timeout (:class:`FirstBytes`); a connection that never sends a request is closed. For a run
with opaque hosts, a CONNECT to one of them is served by :class:`~proxy.splice.OpaqueTunnels`
instead (checked, then spliced without interception).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from proxy.limits import REPORT_INTERVAL_S, ConnectionSlots, Limits, Tally
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.splice import OpaqueTunnels

log = logging.getLogger("coatcheck.proxy")
Handle = Callable[[str, Any, Any], Awaitable[None]]


class RefusalAudit(Protocol):
    def connections_refused(self, run_id: str, decision: Decision, count: int) -> None: ...


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Linux caps open files at fs.nr_open (2**20 by default) even with an unlimited hard limit
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return soft
    return want


class FirstBytes:
    """A connection's reader whose first bytes must come within ``timeout`` seconds; if they
    don't, it reads as closed (and the proxy closes the connection)."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self._reader, self._timeout, self._first = reader, timeout, True

    async def read(self, n: int = -1) -> bytes:
        if not self._first:
            return await self._reader.read(n)
        self._first = False
        try:
            return await asyncio.wait_for(self._reader.read(n), self._timeout)
        except TimeoutError:
            return b""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class RunConnections:
    def __init__(self, limits: Limits, *, interval: float = REPORT_INTERVAL_S) -> None:
        self.limits, self.interval = limits, interval
        self.slots = ConnectionSlots(limits.connections_per_run)
        self.audit: RefusalAudit | None = None
        self.opaque: OpaqueTunnels | None = None  # proxy.splice, set by the service
        self._tally = Tally()

    async def serve(
        self,
        run_id: str,
        handle: Handle,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Serve one connection of ``run_id`` with ``handle``, or close it at once."""
        if not self.slots.enter(run_id):
            writer.transport.abort()
            self._refused(run_id)
            return
        try:
            first: Any = FirstBytes(reader, self.limits.idle_timeout_s)
            if self.opaque is not None:  # a CONNECT to an opaque host is spliced, not handled
                first = await self.opaque.take(run_id, first, writer)
            if first is not None:
                await handle(run_id, first, writer)
        except asyncio.CancelledError:
            # The service is stopping. This task ends quietly rather than cancelled: the done
            # callback of asyncio.streams asks a cancelled task for its exception, which raises
            # and is logged as "Exception in callback" (CPython 3.12.1).
            return
        finally:
            self.slots.leave(run_id)
            writer.close()  # mitmproxy may leave it to the garbage collector

    def _refused(self, run_id: str) -> None:
        if self._tally.add(run_id):
            self._report(run_id, 1)
            asyncio.get_running_loop().call_later(self.interval, self._flush, run_id)

    def _flush(self, run_id: str) -> None:
        count = self._tally.flush(run_id)
        if count:
            self._report(run_id, count)
            asyncio.get_running_loop().call_later(self.interval, self._flush, run_id)

    def _report(self, run_id: str, count: int) -> None:
        cap = self.limits.connections_per_run
        detail = f"{count} connection(s) over this run's cap of {cap} open ones were closed"
        log.warning("run %s: %s", run_id, detail)
        if self.audit is not None:
            self.audit.connections_refused(run_id, deny(Reason.TOO_MANY_CONNECTIONS, detail), count)
