"""PID 1 of every sandbox: the proxy relay, then the job.

A sandbox has no network interface but loopback. Its one way out is a Unix socket bind-mounted
from the host, which leads to the coatcheck proxy and identifies the run by the socket itself
(nothing the job sends can claim another identity). This init listens on 127.0.0.1 at the
proxy port named by ``COATCHECK_PROXY_PORT``, relays every connection to the socket named by
``COATCHECK_PROXY_SOCKET``, runs the command it was given, forwards signals to it, reaps orphans,
and exits with the command's exit code (128 + N when signal N ended it).

It runs inside the sandbox image with the standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

BUFSIZE = 256 * 1024
CONNECT_WAIT_S = 15.0


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(BUFSIZE)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _connect_unix(path: str) -> socket.socket | None:
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
            return upstream
        except OSError:
            upstream.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def _serve(conn: socket.socket, path: str) -> None:
    upstream = _connect_unix(path)
    if upstream is None:
        conn.sendall(
            b"HTTP/1.1 502 Bad Gateway\r\nX-Coatcheck-Reason: proxy_unreachable\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        conn.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    back.start()
    _pipe(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def _accept_loop(listener: socket.socket, path: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(conn, path), daemon=True).start()


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _reset_signals() -> None:
    """The job starts with the signal state of a plain container: every disposition default
    (Python ignores SIGPIPE and SIGXFSZ, so `yes | head -1` would say "Broken pipe") and an
    empty signal mask."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print("coatcheck-init: no command given", file=sys.stderr)
        return 125
    path = os.environ.get("COATCHECK_PROXY_SOCKET", "/run/coatcheck/proxy.sock")
    port = int(os.environ.get("COATCHECK_PROXY_PORT", "3128"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)  # bound before the job starts: its first connect can't race us

    child = os.fork()
    if child == 0:
        listener.close()
        _reset_signals()
        try:
            os.execvp(argv[0], argv)  # noqa: S606 - the job, exactly as given
        except OSError as exc:
            print(f"coatcheck-init: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
    for sig in forwarded:
        signal.signal(sig, forward)
    # Relay threads must never take a signal: Python runs handlers in the main thread only, so
    # a signal delivered to a relay thread would wait unseen while the main thread sits in
    # wait(). Threads inherit the mask in force when they start.
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    threading.Thread(target=_accept_loop, args=(listener, path), daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    while True:  # PID 1 reaps every orphan; the job's own status decides the exit code
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == child:
            return _exit_status(status)


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main(sys.argv[1:]))
