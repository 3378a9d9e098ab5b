"""Failed logins per client, in memory: past ``limit`` failures in ``window`` a client gets 429
until the oldest falls out of the window. A success does not reset the count (a guesser who
also holds a token gains nothing)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from runner.history.db import utc_now

LIMIT: Final = 10
WINDOW: Final = timedelta(minutes=1)
MAX_CLIENTS: Final = 10_000


class Failures:
    def __init__(
        self,
        *,
        limit: int = LIMIT,
        window: timedelta = WINDOW,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[datetime]] = {}

    def blocked(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may now."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self._limit:
                return None
            return max(1, int((times[0] + self._window - now).total_seconds()) + 1)

    def fail(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if not times and len(self._seen) >= MAX_CLIENTS:
                del self._seen[next(iter(self._seen))]
            times.append(now)
            self._seen[client] = times

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        times = self._seen.get(client, deque())
        while times and times[0] + self._window <= now:
            times.popleft()
        if not times:
            self._seen.pop(client, None)
        return times
