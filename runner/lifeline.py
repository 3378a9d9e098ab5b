"""A run that must stop when another process ends (``coatcheck serve``'s runs, ``--parent-pid``).

Started by that process itself, the run asks the kernel (``PR_SET_PDEATHSIG``). Forked by the
zygote instead (the warm path), its parent is the zygote, so it holds a pidfd of that process
and a thread waits for it to become readable (it does when the process ends: no polling).
Either way the run gets SIGTERM, which stops it and cleans up, even after ``kill -9``.
"""

from __future__ import annotations

import os
import select
import signal
import threading

from core.pids import die_with_parent


def die_with(pid: int) -> None:
    """SIGTERM this process when ``pid`` ends (at once if it has ended already)."""
    if os.getppid() == pid and die_with_parent(pid):
        return
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGTERM)
        return
    threading.Thread(target=_watch, args=(fd,), name="coatcheck-lifeline", daemon=True).start()


def _watch(fd: int) -> None:
    """SIGTERM for the main thread (a signal this thread took would not interrupt it)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    select.select([fd], [], [])
    main = threading.main_thread().ident
    if main is not None:
        signal.pthread_kill(main, signal.SIGTERM)
