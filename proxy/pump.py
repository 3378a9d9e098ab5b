"""Copy bytes between two connected sockets both ways in the kernel, with splice(2).

An opaque tunnel (:mod:`proxy.splice`) ends in :func:`pump`: one thread per tunnel moves each
direction through a pipe of its own (socket to pipe to socket, never through Python's memory),
which costs a fraction of the CPU of copying in the event loop. A direction ends at its source's
EOF, passed on as a half-close (``shutdown(SHUT_WR)``) of its destination; once one direction
has ended, the other ends after ``linger`` idle seconds. A reset, a broken pipe or a word on
``stop`` ends both at once.

The sockets must be non-blocking and owned by the caller until :func:`pump` returns; the thread
never closes them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import socket
from dataclasses import dataclass, field

PIPE_SIZE = 1024 * 1024
CHUNK = 1024 * 1024
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EBADF)


@dataclass
class Way:
    """One direction: ``src`` to ``dst`` through a pipe; ``count`` bytes moved so far."""

    src: socket.socket
    dst: socket.socket
    count: int = 0
    pending: int = 0  # bytes in the pipe, not yet written to dst
    eof: bool = False
    done: bool = False
    pipe: tuple[int, int] = field(default=(-1, -1))

    def open(self) -> None:
        self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.pipe[1], _F_SETPIPE_SZ, PIPE_SIZE)

    def close(self) -> None:
        for fd in self.pipe:
            if fd >= 0:
                os.close(fd)
        self.pipe = (-1, -1)

    def step(self) -> None:
        """Move what can be moved now without blocking (OSError when a side is gone)."""
        r, w = self.pipe
        while not self.done:
            if self.pending:
                try:
                    self.pending -= os.splice(r, self.dst.fileno(), self.pending, flags=_FLAGS)
                except BlockingIOError:
                    return
                if self.pending:
                    continue
            if self.eof:
                with contextlib.suppress(OSError):
                    self.dst.shutdown(socket.SHUT_WR)
                self.done = True
                return
            try:
                n = os.splice(self.src.fileno(), w, CHUNK, flags=_FLAGS)
            except BlockingIOError:
                return
            if n == 0:
                self.eof = True
            self.pending += n
            self.count += n

    def interest(self) -> tuple[socket.socket, int] | None:
        if self.done:
            return None
        return (self.dst, select.POLLOUT) if self.pending else (self.src, select.POLLIN)


def pump(ways: list[Way], stop: int, *, linger: float) -> str:
    """Run ``ways`` until all are done (or a side is gone, or ``stop`` is readable); why it
    ended: ``"closed"``, ``"reset"``, ``"idle"`` or ``"stopped"``."""
    for way in ways:
        way.open()
    try:
        return _loop(ways, stop, linger)
    finally:
        for way in ways:
            way.close()


def _loop(ways: list[Way], stop: int, linger: float) -> str:
    while True:
        try:
            for way in ways:
                way.step()
        except OSError as exc:
            if exc.errno in _GONE or isinstance(exc, ConnectionError):
                return "reset"
            raise
        if all(way.done for way in ways):
            return "closed"
        masks: dict[int, int] = {stop: select.POLLIN}
        for way in ways:
            if (want := way.interest()) is not None:
                fd = want[0].fileno()
                masks[fd] = masks.get(fd, 0) | want[1]
        poller = select.poll()
        for fd, mask in masks.items():
            poller.register(fd, mask)
        half = any(way.done for way in ways)
        events = poller.poll(int(linger * 1000) if half else None)
        if not events:
            return "idle"
        if any(fd == stop for fd, _ in events):
            return "stopped"
