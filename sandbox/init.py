"""PID 1 of every sandbox: the proxy relay, then the job.

A sandbox has no network interface but loopback. Its one way out is a Unix socket bind-mounted
from the host, which leads to the coatcheck proxy and identifies the run by the socket itself
(nothing the job sends can claim another identity). This init listens on 127.0.0.1 at the
proxy port named by ``COATCHECK_PROXY_PORT``, relays every connection to the socket named by
``COATCHECK_PROXY_SOCKET``, runs the command it was given, forwards signals to it, reaps orphans,
and exits with the command's exit code (128 + N when signal N ended it).

With ``COATCHECK_DNS`` set (the sandbox always sets it), it also answers every DNS query on that
address with a loopback address of the name's own (see names.py), and relays each connection to
such an address on port 443 or 80 to the proxy as ``CONNECT name:port``: clients that ignore
the proxy variables reach the proxy, under the same rules, with the name they looked up.

It runs inside the sandbox image with the standard library only, so it starts in milliseconds.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import sys
import threading
from types import ModuleType  # (not typing: it costs the init milliseconds at every start)


def _relay() -> ModuleType:
    """sandbox/relay.py. In the image the package sits beside this file (/opt/coatcheck/sandbox);
    in a checkout this file is in it. (``python3 -I`` puts neither on sys.path.)"""
    here = os.path.dirname(os.path.abspath(__file__))
    root = here if os.path.isdir(os.path.join(here, "sandbox")) else os.path.dirname(here)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("sandbox.relay")


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
    # Bound before the job starts: its first connect or lookup can't race us.
    relay = _relay()
    listeners = {
        relay.listen(socket.SOCK_STREAM, ("127.0.0.1", port)): relay.accepting(relay.serve, path)
    }
    dns = os.environ.get("COATCHECK_DNS", "")
    if dns:
        listeners.update(relay.name_listeners(path, dns))

    child = os.fork()
    if child == 0:
        for sock in listeners:
            sock.close()
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
    threading.Thread(target=relay.serve_forever, args=(listeners,), daemon=True).start()
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
