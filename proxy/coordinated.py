"""The shared proxy service as a coordinator and its workers: the process's start-up, ready
line and shut-down (the coordinating itself is :mod:`proxy.coordinator`).

Started by runner.proxyd when the shared service has more than one worker. It imports neither
mitmproxy nor the vault: it stays small, and a worker is what it starts with ``worker_command``.
Its stdout and stderr say "ready" as the one-process service does, once every worker serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from core import messages
from core.errors import CoatcheckError, UsageError
from core.home import coatcheck_home, ensure_private_dir
from proxy import ca, control
from proxy.appendlog import AppendLog
from proxy.coordinator import Coordinator
from proxy.paths import ProxyPaths

WorkerCommand = Callable[[list[str]], list[str]]


def main(argv: list[str], *, count: int, worker_command: WorkerCommand) -> int:
    """Run the shared service as a coordinator of ``count`` workers, each started by the argv
    ``worker_command(service arguments)`` (the service's own arguments are passed on)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="coatcheck proxy: %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        return _serve(argv, count, worker_command)
    except CoatcheckError as exc:
        print(f"coatcheck proxy: error: {exc.message}", file=sys.stderr)
        return exc.exit_code


def _serve(argv: list[str], count: int, worker_command: WorkerCommand) -> int:
    p = argparse.ArgumentParser(add_help=False)
    for flag in ("--home", "--sockets", "--audit-log"):
        p.add_argument(flag, type=Path, default=None)
    opts, _ = p.parse_known_args(argv)
    paths = ProxyPaths.for_home(opts.home or coatcheck_home(), sockets=opts.sockets)
    ensure_private_dir(paths.dir)
    _ensure_ca(paths.confdir)
    if control.ping(paths.control) is not None:
        raise UsageError(
            f"a proxy service already answers at {paths.control} for this "
            "COATCHECK_HOME; stop it first, or use it: `coatcheck run` finds it by itself"
        )
    audit_path = opts.audit_log or paths.audit_log
    audit = AppendLog(audit_path)
    # each worker takes its share of --buffer-total (proxy.service)
    coord = Coordinator(paths, worker_command([*argv, f"--workers={count}"]), count, audit)
    try:
        coord.bind()
        coord.start_workers()
        coord.control.serve()
        sys.stdout.buffer.write(messages.encode({"ok": True, "control": str(paths.control)}))
        sys.stdout.flush()
        pids = ", ".join(str(w.pid) for w in coord.workers)
        print(
            f"coatcheck proxy: ready with {count} workers (pids {pids}); runs register at "
            f"{paths.control}; audit log {audit_path}; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        coord.run_until_stopped()
    finally:
        coord.close()
        audit.close()
    return 0


def _ensure_ca(confdir: Path) -> None:
    """The proxy CA, made once before the workers start (they would race to make it), in a
    child process: cryptography (10 MB) stays out of the coordinator. Called before any
    thread exists, so forking is safe."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            ca.ensure_ca(confdir)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise UsageError(f"could not create the proxy CA in {confdir}; check that it is writable")
