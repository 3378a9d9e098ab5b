"""Bulk transfers: one large download (GET /bytes) and one large upload (POST /upload) at a
time, on a fresh connection each, for direct, plain mitmdump (streaming bodies over 1 MiB),
coatcheck with scrubbing on (the run has a secret for the upstream's name and every request
carries its placeholder: the value is injected, the response scrubbed, the upload scanned) and
coatcheck with the host opaque (``allow_opaque``: checked, audited, spliced without
interception; the client trusts the upstream's own CA).

Rounds take the modes in a rotated order; the report gives medians of MiB/s and of the proxy's
CPU seconds per GiB (its whole process tree).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from tests.bench.client import Target, download, upload
from tests.bench.common import MIB, median, say, tree_cpu_seconds

DIRECTIONS = ("download", "upload")
GIB = 1024 * MIB


@dataclass
class Transfer:
    mode: str
    direction: str
    size: int
    seconds: float
    cpu_s_per_gib: float | None

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds


def one(target: Target, port: int, direction: str, size: int, deadline_s: float) -> Transfer:
    cpu0 = tree_cpu_seconds(target.pid)
    move = download if direction == "download" else upload
    took = move(target, port, size, deadline_s=deadline_s)
    cpu = tree_cpu_seconds(target.pid) - cpu0
    per_gib = cpu * GIB / size if target.pid else None
    return Transfer(target.mode, direction, size, took, per_gib)


def run(
    targets: dict[str, Target],
    port: int,
    *,
    size: int,
    rounds: int,
    deadline: float,
    transfer_limit_s: float,
) -> dict[str, dict[str, list[Transfer]]]:
    """Up to ``rounds`` rounds; no round starts after ``deadline`` (time.monotonic)."""
    out: dict[str, dict[str, list[Transfer]]] = {m: {d: [] for d in DIRECTIONS} for m in targets}
    modes = list(targets)
    for r in range(rounds):
        if r and time.monotonic() > deadline:
            say(f"    (stopping after {r} rounds: the bench's time budget)")
            break
        order = modes[r % len(modes) :] + modes[: r % len(modes)]
        for direction in DIRECTIONS:
            for m in order:
                t = one(targets[m], port, direction, size, transfer_limit_s)
                out[m][direction].append(t)
                cpu = f"{t.cpu_s_per_gib:5.2f} s/GiB" if t.cpu_s_per_gib is not None else ""
                say(
                    f"    round {r + 1} {direction:<8} {m:<18} {t.mib_s:7.1f} MiB/s "
                    f"({t.seconds:5.2f} s)  proxy CPU {cpu}"
                )
    return out


def summary(got: dict[str, dict[str, list[Transfer]]]) -> dict[str, dict[str, object]]:
    res: dict[str, dict[str, object]] = {}
    for m, by_dir in got.items():
        for d, ts in by_dir.items():
            res[f"{m} {d}"] = {
                "mode": m,
                "direction": d,
                "mib_s": median(t.mib_s for t in ts),
                "cpu_s_per_gib": median(t.cpu_s_per_gib for t in ts),
                "samples": [{**asdict(t), "mib_s": t.mib_s} for t in ts],
            }
    return res
