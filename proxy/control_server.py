"""The coordinator's end of ``control.sock``: one JSON request a line, one reply, a thread each.

The protocol is :mod:`core.wire` (the client side is :mod:`proxy.control`). No asyncio here:
the coordinator stays small (asyncio brings ssl along). The socket is bound first and listens
only from :meth:`ControlServer.serve` on, so a ping fails (the service is not there yet) until
every worker serves.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path

from core import wire
from core.errors import CoatcheckError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Dispatch = Callable[[dict[str, Any]], dict[str, Any]]

READ_TIMEOUT_S = 10.0


class ControlServer:
    def __init__(self, path: Path, dispatch: Dispatch) -> None:
        self.path, self.dispatch = path, dispatch
        self._listener: socket.socket | None = None

    def bind(self) -> None:
        """Take the path (a stale socket there is replaced), private (0600); not listening."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self._listener = listener

    def serve(self) -> None:
        """Listen, and answer every connection in a thread of its own from now on."""
        assert self._listener is not None  # noqa: S101
        self._listener.listen(128)
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: stopping
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(READ_TIMEOUT_S)
                reply = self.dispatch(wire.decode(_read_line(conn)))
            except CoatcheckError as exc:
                reply = wire.refusal(exc.message)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                reply = wire.refusal(f"bad control request: {type(exc).__name__}")
            with contextlib.suppress(OSError):
                conn.sendall(wire.encode(reply))


def _read_line(conn: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n") and len(buf) <= wire.MAX_LINE:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf
