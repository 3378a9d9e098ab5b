"""A run's connections: capped, idle ones closed, refusals reported sparingly; the service's
log: rate-limited, one line per OSError. (Real Unix sockets, a stand-in for mitmproxy.)"""

from __future__ import annotations

import asyncio
import logging
import resource
from pathlib import Path
from typing import Any

from proxy.conns import RunConnections, raise_open_files_limit
from proxy.engine import DictValues, Engine
from proxy.limits import Limits, LineBudget
from proxy.logscrub import RateLimit, ScrubbingFormatter
from proxy.policy import Decision


class Audit:
    def __init__(self) -> None:
        self.lines: list[tuple[str, Decision, int]] = []

    def connections_refused(self, run_id: str, decision: Decision, count: int) -> None:
        self.lines.append((run_id, decision, count))


async def _serve(
    tmp: Path, limits: Limits, clients: Any, *, interval: float = 60.0
) -> tuple[Audit, list[bytes]]:
    """Serve run "r" on a socket under ``tmp`` with an echo stand-in for mitmproxy and run
    ``clients(path, audit)``; what the audit got, and what the stand-in read first on each."""
    audit, seen = Audit(), []
    conns = RunConnections(limits, interval=interval)
    conns.audit = audit

    async def handle(run_id: str, reader: Any, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        seen.append(data)
        if data:
            writer.write(b"echo " + data)
            await writer.drain()
            await reader.read(100)  # until the client closes

    path = str(tmp / "run.sock")
    server = await asyncio.start_unix_server(lambda r, w: conns.serve("r", handle, r, w), path=path)
    try:
        await clients(path, audit)
    finally:
        server.close()
    return audit, seen


async def _held(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_unix_connection(path)
    w.write(b"hi")
    assert await r.read(7) == b"echo hi"
    return r, w


async def _refused(path: str) -> None:
    r, w = await asyncio.open_unix_connection(path)
    assert await asyncio.wait_for(r.read(), 5) == b""  # closed at once, nothing said
    w.close()


def test_connections_over_the_cap_are_closed_at_once(tmp_path):
    async def clients(path: str, audit: Audit) -> None:
        held = [await _held(path) for _ in range(3)]
        for _ in range(5):
            await _refused(path)
        for _, w in held:
            w.close()

    audit, seen = asyncio.run(_serve(tmp_path, Limits(connections_per_run=3), clients))
    assert seen == [b"hi"] * 3
    [(run_id, decision, count)] = audit.lines  # the first at once; the others in a later line
    assert (run_id, decision.reason, count) == ("r", "too_many_connections", 1)


def test_refusals_are_reported_once_per_interval_with_their_count(tmp_path):
    async def clients(path: str, audit: Audit) -> None:
        _, w = await _held(path)
        for _ in range(4):
            await _refused(path)
        for _ in range(500):  # until the window ends and its line counts the other 3
            if len(audit.lines) == 2:
                break
            await asyncio.sleep(0.01)
        w.close()

    limits = Limits(connections_per_run=1)
    audit, _ = asyncio.run(_serve(tmp_path, limits, clients, interval=0.05))
    assert [count for _, _, count in audit.lines] == [1, 3]


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(tmp_path):
    limits = Limits(connections_per_run=1, idle_timeout_s=0.2)

    async def clients(path: str, audit: Audit) -> None:
        r, w = await asyncio.open_unix_connection(path)
        assert await asyncio.wait_for(r.read(), 10) == b""  # the proxy closed it
        w.close()
        r, w = await asyncio.open_unix_connection(path)  # its slot is free again
        w.write(b"hi")
        assert await asyncio.wait_for(r.read(7), 10) == b"echo hi"
        w.close()

    _, seen = asyncio.run(_serve(tmp_path, limits, clients))
    assert seen == [b"", b"hi"]


def test_the_open_files_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        raised = raise_open_files_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, info)


def test_an_oserror_is_one_line_not_a_traceback():
    line = ScrubbingFormatter(Engine(DictValues())).format(
        _record("socket.accept() out of system resource", OSError(24, "Too many open files"))
    )
    assert "\n" not in line and "Traceback" not in line
    assert "OSError: [Errno 24] Too many open files" in line


def test_log_lines_are_rate_limited_with_a_count_of_those_held_back():
    now = [0.0]
    limit = RateLimit(LineBudget(limit=3, interval=10.0), clock=lambda: now[0])
    passed = [
        r.getMessage() for r in (_record(f"line {i}") for i in range(1000)) if limit.filter(r)
    ]
    assert len(passed) == 3 and "more in the next 10s are held back" in passed[-1]
    now[0] = 10.0
    record = _record("after")
    assert limit.filter(record)
    assert record.getMessage() == "after [997 earlier log lines were held back]"
