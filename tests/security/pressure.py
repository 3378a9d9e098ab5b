"""Tools of the resource-exhaustion attacks: many connections to a run's socket, which of
them the proxy closed, the service's peak memory and open files, and bounded waits.

The service's figures come from /proc/<pid>/status (``VmRSS``, and ``VmHWM``, its peak, which
is reset where the kernel allows) and /proc/<pid>/fd.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.harness import ProxyHarness, Run

WAIT_S = 30.0  # the most any wait waits for its event


def wait_for(what: str, check: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"still not {what} after {timeout}s"
        time.sleep(0.02)


def unix(run: Run) -> socket.socket:
    """A connection to the run's socket; waits while the proxy's accept backlog is full."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(15)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            sock.connect(run.socket)
            return sock
        except BlockingIOError:  # the backlog is full: the proxy has yet to accept
            assert time.monotonic() < deadline, "the proxy stopped accepting connections"
            select.select([], [], [], 0.005)


class Closed:
    """Which of ``socks`` the proxy has closed (EOF or reset), polled without blocking."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.open = {s.fileno(): s for s in socks}
        self.closed = 0

    def count(self) -> int:
        poll = select.poll()
        for fd in self.open:
            poll.register(fd, select.POLLIN)
        for fd, _ in poll.poll(0):
            with contextlib.suppress(OSError):
                if self.open[fd].recv(1, socket.MSG_DONTWAIT):
                    continue  # the proxy said something: not closed
            self.open.pop(fd)
            self.closed += 1
        return self.closed


class Peak:
    """The service's peak resident memory and open files while the block runs (VmHWM is reset
    at the start where the kernel allows; a sampler covers the rest)."""

    def __init__(self, proxy: ProxyHarness) -> None:
        self.proxy, self.rss_kb, self.fds = proxy, 0, 0
        self._stop = threading.Event()
        self._reset = False

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError, KeyError):
                self.rss_kb = max(self.rss_kb, self.proxy.status("VmRSS"))
                self.fds = max(self.fds, self.proxy.open_files())

    def __enter__(self) -> Peak:
        with contextlib.suppress(OSError):
            for pid in self.proxy.service_pids():  # the coordinator and its workers, if any
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            self._reset = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._reset:
            self.rss_kb = max(self.rss_kb, self.proxy.status("VmHWM"))
