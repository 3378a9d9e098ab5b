"""Which service started a run: ``"host:pid"``, recorded on its history row. A service starting
up (and every hour after) ends the unfinished runs of services that are gone; runs of a live
service, on this database too, are left alone, and count for its deployments' overlap."""

from __future__ import annotations

import os
import socket

from core.pids import alive


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(who: str | None) -> bool:
    """Whether the service that started a run still runs (one on another host: assumed so)."""
    host, _, pid = (who or "").rpartition(":")
    if not host or not pid.isdigit():
        return False
    return host != socket.gethostname() or alive(int(pid))
