"""Which run a connection belongs to: the synthetic peer name its stream carries. Pure.

Sandboxes reach the proxy through a per-run Unix socket; the service hands each accepted
stream to mitmproxy with a synthetic peer name ``("run:<id>", n)`` (:func:`run_peername`).
Nothing a sandbox sends can change that name, so the run is known without trusting the client
(:func:`run_id_of`). Connections on the loopback TCP listener have an ordinary peer name and
belong to no run: they are refused.
"""

from __future__ import annotations

import itertools

RUN_PEER = "run:"
_seq = itertools.count(1)


def run_peername(run_id: str) -> tuple[str, int]:
    return (RUN_PEER + run_id, next(_seq) % 65536)


def run_id_of(peername: object) -> str | None:
    """The run a connection with this peer name belongs to; None for any other peer."""
    host = peername[0] if isinstance(peername, tuple) and peername else None
    if isinstance(host, str) and host.startswith(RUN_PEER):
        return host[len(RUN_PEER) :]
    return None
