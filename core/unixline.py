"""One request line over a Unix socket and one reply line back: the client side of the proxy
service's and ``coatcheck serve``'s control sockets (each translates the failures into its own
error with its own fix)."""

from __future__ import annotations

import socket
from pathlib import Path


class Unreachable(Exception):
    """Nothing accepts connections at the socket's path (``str(exc)`` says why)."""


def exchange(path: Path, line: bytes, *, timeout: float, max_line: int) -> bytes:
    """Send ``line`` to the socket at ``path``; the reply up to its newline, the peer closing,
    or ``max_line`` bytes. ``Unreachable`` if it can't connect; ``TimeoutError`` if the reply
    is late."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise Unreachable(exc.strerror or str(exc)) from None
        sock.sendall(line)
        buf = b""
        while not buf.endswith(b"\n") and len(buf) <= max_line:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf
    finally:
        sock.close()
