"""Is a process still there? Used to reap what a crashed run left behind."""

from __future__ import annotations

import os
import subprocess


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


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``proc`` to exit; kill it if it hasn't within ``timeout`` seconds. Then close
    its stdout pipe, if it has one."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
