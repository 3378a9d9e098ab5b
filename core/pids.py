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


def stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM ``proc`` unless it has exited, then :func:`wait_or_kill` it."""
    if proc.poll() is None:
        proc.terminate()
    wait_or_kill(proc, timeout)


def die_with_parent(parent: int) -> bool:
    """Ask Linux to send this process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so
    a run started by ``coatcheck serve`` stops (and removes its sandbox) when the service is
    killed, even with ``kill -9``. False where that can't be arranged (not Linux). If the
    parent is already gone, SIGTERM is sent at once."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG = 1
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True
