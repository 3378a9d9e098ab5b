"""Server-sent events: the time until the first event of a stream arrives, on a fresh
connection (connect, CONNECT, TLS, request), directly and through the proxy (a warm run's
socket; the request injects a value, so the response is scrubbed as it streams). The upstream
holds the stream open after the first event: a proxy that buffered the stream would deliver it
only after that hold, which the report flags."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from tests.bench.client import Target, first_event
from tests.bench.common import median, say


@dataclass
class Event:
    mode: str
    from_connect_ms: float
    from_request_ms: float


def run(
    targets: dict[str, Target], port: int, *, samples: int, hold_ms: int, deadline: float
) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {m: [] for m in targets}
    modes = list(targets)
    for i in range(samples):
        if i and time.monotonic() > deadline:
            say(f"    (stopping after {i} samples: the bench's time budget)")
            break
        for m in modes[i % len(modes) :] + modes[: i % len(modes)]:
            a, b = first_event(targets[m], port, hold_ms)
            out[m].append(Event(m, a * 1000, b * 1000))
    for m, evs in out.items():
        say(
            f"    {m:<13} first event: median {median(e.from_connect_ms for e in evs):6.1f} ms "
            f"from connect, {median(e.from_request_ms for e in evs):6.1f} ms from the request "
            f"(n={len(evs)}; the upstream holds the stream {hold_ms} ms after it)"
        )
    return out


def summary(got: dict[str, list[Event]], hold_ms: int) -> dict[str, dict[str, object]]:
    res: dict[str, dict[str, object]] = {}
    for m, evs in got.items():
        mid = median(e.from_request_ms for e in evs)
        res[m] = {
            "from_connect_ms": median(e.from_connect_ms for e in evs),
            "from_request_ms": median(e.from_request_ms for e in evs),
            "streamed": mid is not None and mid < hold_ms,  # buffering waits for the hold
            "hold_ms": hold_ms,
            "samples": [asdict(e) for e in evs],
        }
    return res
