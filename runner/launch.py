"""The ``coatcheck`` console script: a thin entry point for the warm path.

``coatcheck run ...`` with a proxy service running is handed to the service's zygote
(``runner/zygote.py``) over ``launch.sock``: the run's process is forked from one that has
imported everything already, gets this process's stdin, stdout and stderr, its working directory
and environment, and sends back the exit code. Signals this process gets (Ctrl-C, SIGTERM,
SIGHUP) are forwarded to it; if this process dies, the run stops and cleans up.

Every other command, and ``run`` when no zygote answers or it refuses before taking the run,
goes to ``runner.cli`` in this process, exactly as before. Output, exit codes and errors are
the same either way: the forked process runs the same ``runner.cli.main``.

This module imports the standard library, ``core.home``, ``proxy.paths`` and
``runner.launch_wire`` only (a test checks it): click, docker and cryptography cost ~0.3 s of
CPU to import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

from core.home import coatcheck_home
from proxy.paths import ProxyPaths
from runner.launch_wire import (
    STDIO,
    LaunchRequest,
    LineReader,
    WireError,
    line,
    parse,
    send_with_fds,
)

LOST = 125  # the run's process ended without an exit code (the service was stopped)
CONNECT_TIMEOUT_S = 5.0


def launch_socket(environ: dict[str, str] | None = None) -> Path:
    return ProxyPaths.for_home(coatcheck_home(environ)).launch


def _streams() -> tuple[tuple[str, str], ...]:
    out = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        errors = getattr(stream, "errors", None) or "strict"
        out.append((encoding, errors))
    return tuple(out)


class Launched:
    """A run the zygote took: its pid, and the connection its signals and exit code use."""

    def __init__(self, sock: socket.socket, reader: LineReader, pid: int) -> None:
        self.sock = sock
        self.reader = reader
        self.pid = pid

    def signal(self, signum: int) -> None:
        """Forward ``signum`` (best effort: a run that is gone needs no signal)."""
        with contextlib.suppress(OSError):
            self.sock.sendall(line(signal=signum))

    def wait(self) -> int | None:
        """The run's exit code; None if its process ended without one."""
        try:
            while raw := self.reader.read():
                reply = parse(raw)
                if isinstance(reply.get("exit"), int):
                    return int(reply["exit"])
        except (OSError, WireError):
            return None
        finally:
            self.sock.close()
        return None


def hand_over(
    argv: list[str],
    *,
    path: Path,
    fds: tuple[int, ...] = STDIO,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    streams: tuple[tuple[str, str], ...] | None = None,
) -> Launched | None:
    """Hand ``coatcheck ARGV`` to the zygote at ``path`` with ``fds`` as its stdin, stdout and
    stderr. None when nothing answers or the zygote refused (nothing was started)."""
    umask = os.umask(0o077)  # read it back (there is no getter)
    os.umask(umask)
    try:
        request = LaunchRequest(
            "run", tuple(argv), cwd if cwd is not None else os.getcwd(),
            dict(os.environ if env is None else env),
            _streams() if streams is None else streams, umask,
        )  # fmt: skip
    except OSError:  # the working directory is gone: let the usual path say so
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(str(path))
        send_with_fds(sock, request.encode(), fds)
        reader = LineReader(sock)
        reply = parse(reader.read())
        if not isinstance(reply.get("pid"), int):
            sock.close()
            return None
        sock.sendall(line(go=True))  # from here on the run is the zygote's, never ours
        sock.settimeout(None)
        return Launched(sock, reader, int(reply["pid"]))
    except (OSError, WireError):
        sock.close()
        return None


def run_warm(argv: list[str], *, path: Path) -> int | None:
    """``coatcheck ARGV`` through the zygote, forwarding signals; its exit code, or None when
    it was not taken (the caller runs it itself). A signal that comes before the run's
    process is there is passed on once it is, or raised here again if it never is."""
    got: list[int] = []
    sent = 0
    taken: list[Launched] = []

    def forward(signum: int, _frame: object) -> None:
        got.append(signum)
        flush()

    def flush() -> None:
        nonlocal sent
        while taken and sent < len(got):
            sent += 1
            taken[0].signal(got[sent - 1])

    # A SIGINT this process ignores (a background job of a script, `nohup`-like wrappers) stays
    # ignored, as the usual path leaves it: Python installs no handler for an ignored SIGINT.
    # SIGTERM and SIGHUP are always handled, as `coatcheck run` handles them itself.
    caught = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
              if s != signal.SIGINT or signal.getsignal(s) is not signal.SIG_IGN]  # fmt: skip
    old = {s: signal.signal(s, forward) for s in caught}
    try:
        launched = hand_over(argv, path=path)
        if launched is None:
            code = None
        else:
            taken.append(launched)
            flush()
            code = launched.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if launched is None:
        for signum in got:  # as if it had come now: the usual path never started
            signal.raise_signal(signum)
        return None
    if code is None and got:  # it died of the signal we passed on: so do we, as it would have
        signal.signal(got[-1], signal.SIG_DFL)
        os.kill(os.getpid(), got[-1])
    if code is None:
        sys.stderr.write(
            "coatcheck: error: the run's process ended without an exit code (was the proxy "
            "service stopped?); `coatcheck runs list` shows what it recorded\n"
        )
        return LOST
    return code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        code = run_warm(args, path=launch_socket())
        if code is not None:
            return code
    from runner.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
