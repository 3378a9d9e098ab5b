"""The zygote: warm ``coatcheck run``s forked from a process that has imported everything.

The shared proxy service (``coatcheck proxy``, and ``coatcheck serve``'s own) starts one as
``python -I -m runner.zygote --parent-pid PID [service args]``; it dies with the service. It
imports what a run needs once, then serves ``launch.sock`` (0600, in the service's private
socket directory). For each connection it checks the peer is this user (SO_PEERCRED), reads
one request (``runner/launch_wire.py``) with the client's stdin, stdout and stderr, and forks.
The child takes the client's place and runs ``runner.cli.main(argv)``
(``runner/zygote_child.py``): a normal full ``coatcheck run``, which finds the proxy on the
control socket and registers as ever; its exit code goes back to the client.

The zygote stays single-threaded: it reaps children on SIGCHLD (a wakeup fd in its selector,
no polling), and then removes sandboxes whose owner is gone (a child killed with ``kill -9``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from core import pids
from core.home import coatcheck_home, ensure_private_dir
from core.pids import die_with_parent
from proxy.paths import ProxyPaths
from runner.launch_wire import STDIO, LaunchRequest, LineReader, WireError, line, parse
from runner.zygote_child import take_over

# What `coatcheck run` imports, at module level and lazily, job files and agent runs included.
PRELOAD = (
    "runner.cli", "runner.run", "runner.recorded", "runner.ephemeral", "runner.proxyd",
    "runner.jobfile", "runner.jobcheck", "runner.agent_run", "runner.progress", "runner.junit",
    "runner.history", "runner.history.store", "sandbox.docker", "images.build", "vault.store",
    "vault.keystore", "vault.rotation", "proxy.ca", "proxy.runs", "proxy.control", "keyring",
    "runner.lifeline",
    "structlog", "sqlite3", "ctypes", "requests", "docker",
)  # fmt: skip
REQUEST_TIMEOUT_S = 5.0
HANDLED = (signal.SIGTERM, signal.SIGCHLD, signal.SIGINT, signal.SIGHUP)
Main = Callable[[list[str]], int]


def preload(names: tuple[str, ...] = PRELOAD) -> None:
    for name in names:
        importlib.import_module(name)


class Zygote:
    """Serves ``path`` until SIGTERM; ``main(argv)`` is what each child runs."""

    def __init__(
        self,
        path: Path,
        *,
        main: Main,
        uid: int | None = None,
        after_child: Callable[[], None] = lambda: None,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.path = path
        self._on_ready = on_ready
        self._main = main
        self._uid = os.getuid() if uid is None else uid
        self._after_child = after_child
        self._pid = os.getpid()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._selector: selectors.BaseSelector | None = None
        self._inode = 0
        self.children: set[int] = set()

    # -- the zygote -------------------------------------------------------------------------
    def serve(self) -> None:
        ensure_private_dir(self.path.parent)
        try:
            self._bind()
            wake_r, wake_w = self._wake = socket.socketpair()
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            sel = self._selector = selectors.DefaultSelector()
            assert self._listener is not None
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(wake_r, selectors.EVENT_READ)
            signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
            signal.signal(signal.SIGCHLD, lambda _n, _f: None)  # the wakeup fd does the work
            self._on_ready()
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        with contextlib.suppress(BlockingIOError):
                            while wake_r.recv(512):
                                pass
                        self._reap()
        finally:
            signal.set_wakeup_fd(-1)
            self.close()

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:  # ours, not a newer zygote's
                self.path.unlink()
        for s in (self._listener, *(self._wake or ())):
            if s is not None:
                s.close()
        if self._selector is not None:
            self._selector.close()

    def _bind(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._inode = os.stat(self.path).st_ino

    def _reap(self) -> None:
        ended = False
        while self.children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                break
            if pid == 0:
                break
            self.children.discard(pid)
            ended = True
        if ended:
            self._after_child()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            _pid, uid, _gid = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            )
            if uid != self._uid:
                conn.sendall(line(refused=f"uid {uid} is not this zygote's user"))
                return
            reader = LineReader(conn)
            raw, fds = reader.read_first(len(STDIO))
            req = LaunchRequest.decode(raw)
            if req.op == "ping":
                conn.sendall(line(pong=self._pid))
                return
            if req.argv[:1] != ("run",) or len(fds) != len(STDIO):
                conn.sendall(line(refused="the zygote takes `coatcheck run` with its stdio only"))
                return
            self._fork(conn, reader, req, fds)
        except (OSError, WireError) as exc:
            with contextlib.suppress(OSError):
                conn.sendall(line(refused=f"bad launch request: {exc}"))
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()

    def _fork(
        self, conn: socket.socket, reader: LineReader, req: LaunchRequest, fds: list[int]
    ) -> None:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        pid = os.fork()
        if pid == 0:
            try:
                signal.set_wakeup_fd(-1)
                for s in (self._listener, *(self._wake or ())):
                    if s is not None:
                        s.close()
                if self._selector is not None:
                    self._selector.close()
                take_over(conn, reader, req, fds, zygote=self._pid, mask=blocked, main=self._main)
            finally:
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.children.add(pid)


def answers(path: Path) -> bool:
    """Does a zygote answer at ``path``?"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(REQUEST_TIMEOUT_S)
    try:
        sock.connect(str(path))
        sock.sendall(LaunchRequest("ping").encode())
        return "pong" in parse(LineReader(sock).read())
    except (OSError, WireError):
        return False
    finally:
        sock.close()


def reap_orphans() -> None:
    """Remove sandboxes whose owning run is gone, with a Docker client of its own (closed
    again: no connection of the zygote's is ever inherited by a child)."""
    from sandbox.docker import Sandboxes

    sandboxes = Sandboxes()
    with contextlib.suppress(Exception):  # no engine, or it failed: the next run's start reaps
        sandboxes.reap_orphans()
    sandboxes.close()


# -- the service's side ------------------------------------------------------------------------
def spawn(service_args: list[str]) -> subprocess.Popen[bytes] | None:
    """The zygote of a shared proxy service started with ``service_args`` (none for an
    ephemeral one); it dies with this process."""
    if "--ephemeral" in service_args:
        return None
    argv = [sys.executable, "-I", "-m", "runner.zygote", "--parent-pid", str(os.getpid()),
            *service_args]  # fmt: skip
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a zygote from ``spawn`` (it removes its socket); its runs get SIGTERM."""
    if proc is not None:
        pids.stop(proc, timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coatcheck-zygote")
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--sockets", type=Path, default=None)
    args, _service_args = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    paths = ProxyPaths.for_home(args.home or coatcheck_home(), sockets=args.sockets)
    preload()
    if answers(paths.launch):
        return 0  # another service's zygote serves this COATCHECK_HOME
    from runner.cli import main as cli_main

    def stop_serving(_n: int, _f: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop_serving)
    signal.signal(signal.SIGINT, stop_serving)
    reap_orphans()
    with contextlib.suppress(SystemExit):
        Zygote(paths.launch, main=cli_main, after_child=reap_orphans).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
