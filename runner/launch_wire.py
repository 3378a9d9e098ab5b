"""The launch socket's messages: one JSON line each way, and the client's stdio with the first.

Standard library only: the thin ``coatcheck`` entry point (``runner/launch.py``) imports this
and nothing heavier. The conversation on one connection::

    client -> zygote   LaunchRequest line, with the client's fds 0, 1, 2 (SCM_RIGHTS)
    zygote -> client   {"refused": WHY}         nothing was started: run the usual way
                    or {"pid": N}               the run's process is ready to take the run
    client -> run      {"go": true}             it is the run's (without it, nothing runs)
    client -> run      {"signal": N} lines      SIGINT, SIGTERM or SIGHUP the client received
    run -> client      {"exit": CODE}           the run's exit code; then the connection ends

A ``ping`` request (no fds) is answered ``{"pong": PID}``. The environment travels here (a
private 0600 socket), never in argv, and nothing logs it.
"""

from __future__ import annotations

import array
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Final

MAX_LINE: Final = 4 << 20  # an environment is rarely more than a few KiB; refuse a flood
FORWARDED: Final = frozenset((1, 2, 15))  # SIGHUP, SIGINT, SIGTERM: what a client forwards
STDIO: Final = (0, 1, 2)


class WireError(ValueError):
    """A malformed line, or one that is too long."""


@dataclass(frozen=True)
class LaunchRequest:
    """One ``coatcheck`` command line to run in the client's place."""

    op: str  # "run" or "ping"
    argv: tuple[str, ...] = ()
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    # (encoding, errors) of the client's stdin, stdout and stderr, so text I/O matches its own.
    streams: tuple[tuple[str, str], ...] = ()
    umask: int = 0o022

    def encode(self) -> bytes:
        return line(
            op=self.op, argv=list(self.argv), cwd=self.cwd, env=self.env,
            streams=[list(s) for s in self.streams], umask=self.umask,
        )  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> LaunchRequest:
        data = parse(raw)
        op, argv, cwd, env = (
            data.get("op"),
            data.get("argv", []),
            data.get("cwd", "/"),
            data.get("env", {}),
        )
        streams, umask = data.get("streams", []), data.get("umask", 0o022)
        if op not in ("run", "ping"):
            raise WireError(f"unknown op {op!r}")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
            raise WireError("argv must be a list of strings")
        if not isinstance(cwd, str) or not cwd.startswith("/"):
            raise WireError("cwd must be an absolute path")
        if not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise WireError("env must map names to strings")
        if not (
            isinstance(streams, list)
            and all(
                isinstance(s, list) and len(s) == 2 and all(isinstance(x, str) for x in s)
                for s in streams
            )  # fmt: skip
        ):
            raise WireError("streams must be [encoding, errors] pairs")
        if not isinstance(umask, int) or not 0 <= umask <= 0o777:
            raise WireError("umask must be a file mode")
        return cls(op, tuple(argv), cwd, dict(env), tuple((s[0], s[1]) for s in streams), umask)


def line(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def parse(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise WireError("not a JSON line") from None
    if not isinstance(data, dict):
        raise WireError("not a JSON object")
    return data


def send_with_fds(sock: socket.socket, data: bytes, fds: tuple[int, ...]) -> None:
    """``data`` with ``fds`` attached to its first byte."""
    fdarray = array.array("i", fds)
    sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fdarray)])
    if sent < len(data):
        sock.sendall(data[sent:])


class LineReader:
    """Lines from a stream socket, with the fds that came with the first bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def read_first(self, nfds: int) -> tuple[bytes, list[int]]:
        """The first line and up to ``nfds`` fds passed with it (b"" at end of stream).
        Reads no further than the line's end (the peer sends nothing more until answered)."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, nfds)
        if not data:
            return b"", list(fds)
        self._buf = data
        try:
            return self.read(), list(fds)
        except BaseException:
            for fd in fds:
                socket.close(fd)
            raise

    def read(self) -> bytes:
        """The next line without its newline; b"" at the end of the stream."""
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_LINE:
                raise WireError("line too long")
            chunk = self.sock.recv(65536)
            if not chunk:
                if self._buf:
                    raise WireError("the stream ended in the middle of a line")
                return b""
            self._buf += chunk
        head, _, self._buf = self._buf.partition(b"\n")
        return head
