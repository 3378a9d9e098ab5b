"""Is a process still there? Used to reap what a crashed run left behind."""

from __future__ import annotations

import os


def alive(pid: int | None) -> bool:
    """True unless ``pid`` names no process (None counts as alive: no owner to outlive)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
