"""How much of a shared proxy one run may take: connections, buffered bytes, time. Pure.

A job can open connections and hold them, or send bodies the proxy has to hold, to starve the
other runs of the same proxy (of file descriptors, of memory). These are the caps, their
defaults and the small accounting objects that keep them; :mod:`proxy.conns` (a run's
connections) and :mod:`proxy.mitm` (buffered request bodies) apply them.

- **Connections per run** (``--max-connections-per-run``, 256): one more is closed at once.
  Refusals are counted into one audit line per run per :data:`REPORT_INTERVAL_S` at most.
- **Idle connections** (``--idle-timeout``, 30 s): a connection that sends nothing in that
  long after it opened is closed (later on, mitmproxy's own inactivity timeout applies).
- **Buffered request bodies** (held whole for inspection: a body-surface secret applies, or
  the run has ``--on-leak block``): each up to :data:`~proxy.rewrite.MAX_INSPECT_BYTES`
  (413 ``too_large``, and no more of it is read); a run's together up to ``--buffer-per-run``
  MiB (64) and all runs' up to ``--buffer-total`` MiB (256) (429 ``buffer_full``); each one
  complete within ``--body-timeout`` seconds of its head (60; 408 ``body_timeout``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import NamedTuple

from core.errors import UsageError
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.rewrite import MAX_INSPECT_BYTES, too_large

MIB = 1024 * 1024
MAX_CONNECTIONS_PER_RUN = 256
IDLE_TIMEOUT_S = 30.0
BODY_TIMEOUT_S = 60.0
RUN_BUFFER_MIB = 64
TOTAL_BUFFER_MIB = 256
REPORT_INTERVAL_S = 10.0  # refused connections: one audit line per run per interval at most
LOG_LINES, LOG_INTERVAL_S = 20, 10.0  # the service's own log: lines per interval at most


@dataclass(frozen=True, slots=True)
class Limits:
    connections_per_run: int = MAX_CONNECTIONS_PER_RUN
    idle_timeout_s: float = IDLE_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    run_buffer_bytes: int = RUN_BUFFER_MIB * MIB
    total_buffer_bytes: int = TOTAL_BUFFER_MIB * MIB

    def __post_init__(self) -> None:
        if self.connections_per_run < 1:
            raise UsageError("--max-connections-per-run must be at least 1")
        for name, value in (("idle", self.idle_timeout_s), ("body", self.body_timeout_s)):
            if not (value > 0 and math.isfinite(value)):
                raise UsageError(f"--{name}-timeout must be a positive number of seconds")
        if self.run_buffer_bytes < MAX_INSPECT_BYTES:
            raise UsageError(
                f"--buffer-per-run must be at least {MAX_INSPECT_BYTES // MIB} (MiB): "
                "one body of the largest size the proxy inspects must fit"
            )
        if self.total_buffer_bytes < self.run_buffer_bytes:
            raise UsageError("--buffer-total must be at least --buffer-per-run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The service's options for :class:`Limits`."""
    add = parser.add_argument
    add("--max-connections-per-run", type=int, default=MAX_CONNECTIONS_PER_RUN, metavar="N")
    add("--idle-timeout", type=float, default=IDLE_TIMEOUT_S, metavar="SECONDS")
    add("--body-timeout", type=float, default=BODY_TIMEOUT_S, metavar="SECONDS")
    add("--buffer-per-run", type=int, default=RUN_BUFFER_MIB, metavar="MIB")
    add("--buffer-total", type=int, default=TOTAL_BUFFER_MIB, metavar="MIB")


def from_args(args: argparse.Namespace) -> Limits:
    return Limits(
        connections_per_run=args.max_connections_per_run,
        idle_timeout_s=args.idle_timeout,
        body_timeout_s=args.body_timeout,
        run_buffer_bytes=args.buffer_per_run * MIB,
        total_buffer_bytes=args.buffer_total * MIB,
    )


class Refusal(NamedTuple):
    decision: Decision
    status: int


class BufferBudget:
    """Bytes held by buffered request bodies, per run and in total, each under its cap."""

    def __init__(self, per_run: int, total: int) -> None:
        self.per_run, self.total = per_run, total
        self.held_total = 0
        self._held: dict[str, int] = {}

    def held(self, run_id: str) -> int:
        return self._held.get(run_id, 0)

    def take(self, run_id: str, n: int) -> Refusal | None:
        """Hold ``n`` more bytes for ``run_id``; the refusal when that is over a cap."""
        held = self.held(run_id)
        if held + n > self.per_run:
            return _full(f"this run already holds {held} bytes of bodies to inspect")
        if self.held_total + n > self.total:
            return _full("the proxy holds as many bodies to inspect as it can")
        self._held[run_id] = held + n
        self.held_total += n
        return None

    def give_back(self, run_id: str, n: int) -> None:
        left = self.held(run_id) - n
        if left > 0:
            self._held[run_id] = left
        else:
            self._held.pop(run_id, None)
        self.held_total = max(0, self.held_total - n)


def _full(why: str) -> Refusal:
    return Refusal(deny(Reason.BUFFER_FULL, f"{why}; retry when they are done"), 429)


class BodyGate:
    """One buffered request body: its bytes are taken from the budget as they arrive, under
    the size cap, until its deadline; all given back by :meth:`release`."""

    def __init__(
        self, budget: BufferBudget, run_id: str, *, deadline: float, timeout: float
    ) -> None:
        self.budget, self.run_id = budget, run_id
        self.deadline, self.timeout = deadline, timeout
        self.cap = MAX_INSPECT_BYTES
        self.taken = 0
        self.receiving = True  # until the body is complete, refused or released

    def feed(self, n: int, now: float) -> Refusal | None:
        """``n`` more bytes arrived at ``now``: None to keep them, else the refusal."""
        refused = self.overdue(now)
        if refused is None and self.taken + n > self.cap:
            refused = Refusal(too_large(), 413)
        if refused is None:
            refused = self.budget.take(self.run_id, n)
        if refused is None:
            self.taken += n
        return refused

    def overdue(self, now: float) -> Refusal | None:
        if now < self.deadline:
            return None
        late = f"the request body did not arrive within {self.timeout:g} seconds"
        return Refusal(deny(Reason.BODY_TIMEOUT, late), 408)

    def release(self) -> None:
        self.receiving = False
        if self.taken:
            self.budget.give_back(self.run_id, self.taken)
            self.taken = 0


class ConnectionSlots:
    """Open connections per run, up to ``per_run`` each."""

    def __init__(self, per_run: int) -> None:
        self.per_run = per_run
        self._open: dict[str, int] = {}

    def open(self, run_id: str) -> int:
        return self._open.get(run_id, 0)

    def enter(self, run_id: str) -> bool:
        """Take a slot; False (and nothing taken) when the run has none left."""
        n = self.open(run_id)
        if n >= self.per_run:
            return False
        self._open[run_id] = n + 1
        return True

    def leave(self, run_id: str) -> None:
        n = self.open(run_id) - 1
        if n > 0:
            self._open[run_id] = n
        else:
            self._open.pop(run_id, None)


class Tally:
    """Events per key, reported in few lines: the first at once, then one line per window
    with the count since the last one, until a window passes without any."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, key: str) -> bool:
        """Count one; True when it opens a window (report it now, and call :meth:`flush`
        when the window ends)."""
        if key in self._counts:
            self._counts[key] += 1
            return False
        self._counts[key] = 0
        return True

    def flush(self, key: str) -> int:
        """The count since the last report. Non-zero: a new window opens (flush it again
        when that one ends); zero: the key is done with."""
        n = self._counts.get(key, 0)
        if n:
            self._counts[key] = 0
        else:
            self._counts.pop(key, None)
        return n


class LineBudget:
    """At most ``limit`` lines per ``interval`` seconds; counts the lines held back."""

    def __init__(self, limit: int = LOG_LINES, interval: float = LOG_INTERVAL_S) -> None:
        self.limit, self.interval = limit, interval
        self.start, self.used, self.held_back = -math.inf, 0, 0

    def admit(self, now: float) -> tuple[bool, int]:
        """Whether a line may go out at ``now``, and how many were held back before it (to
        say so in it)."""
        if now - self.start >= self.interval:
            self.start, self.used = now, 0
        if self.used >= self.limit:
            self.held_back += 1
            return False, 0
        self.used += 1
        held, self.held_back = self.held_back, 0
        return True, held

    @property
    def last_in_window(self) -> bool:
        return self.used == self.limit
