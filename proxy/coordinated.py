"""The shared proxy service as a coordinator and its workers: the process's start-up, ready
line and shut-down (the coordinating itself is :mod:`proxy.coordinator`).

Started by runner.proxyd when the shared service has more than one worker, in two steps:

1. :func:`prepare`, in the process that read the command line (``python -m runner.proxyd``,
   or ``coatcheck proxy`` itself): the paths, the proxy CA (made once, before the workers start:
   they would race to make it), and no other service answering for this ``COATCHECK_HOME``.
2. :func:`become`: that process ``exec``\\s ``python -I -m proxy.coordinated PLAN`` (same pid,
   same stdio, same children: the zygote runner.proxyd started). What it had imported is
   gone (argparse and the zygote's modules; click for ``coatcheck proxy``; cryptography if it
   made the CA); the coordinator imports the standard library's socket, threading, subprocess
   and json and our own small modules: no mitmproxy, no vault, no hashlib (OpenSSL), no
   tempfile (a test checks it). It runs as long as the service: it stays small.

Its stdout and stderr say "ready" as the one-process service does, once every worker serves.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from core import wire
from core.errors import CoatcheckError, UsageError
from core.home import ensure_private_dir
from proxy.appendlog import AppendLog
from proxy.coordinator import Coordinator, warn
from proxy.paths import ProxyPaths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

WorkerCommand = Callable[[list[str]], list[str]]
ZYGOTE_STOP_S = 10.0  # as runner.zygote.stop


class Plan:
    """What the coordinator runs with: everything :func:`prepare` worked out. It travels as
    the JSON argument of ``python -m proxy.coordinated`` (no secret in it)."""

    __slots__ = ("audit_log", "count", "home", "sockets", "worker_argv", "zygote_pid")

    def __init__(self, *, home: Path, sockets: Path, audit_log: Path, count: int,
                 worker_argv: list[str], zygote_pid: int | None = None) -> None:  # fmt: skip
        self.home, self.sockets, self.audit_log = home, sockets, audit_log
        self.count, self.worker_argv, self.zygote_pid = count, worker_argv, zygote_pid

    def encode(self) -> str:
        return json.dumps({
            "home": str(self.home), "sockets": str(self.sockets),
            "audit_log": str(self.audit_log), "count": self.count,
            "worker_argv": self.worker_argv, "zygote_pid": self.zygote_pid,
        })  # fmt: skip

    @classmethod
    def decode(cls, text: str) -> Plan:
        obj = json.loads(text)
        return cls(home=Path(obj["home"]), sockets=Path(obj["sockets"]),
                   audit_log=Path(obj["audit_log"]), count=int(obj["count"]),
                   worker_argv=[str(a) for a in obj["worker_argv"]],
                   zygote_pid=obj["zygote_pid"])  # fmt: skip


def prepare(argv: list[str], *, count: int, worker_command: WorkerCommand) -> Plan:
    """The plan of a coordinator of ``count`` workers, each started by the argv
    ``worker_command(service arguments)`` (the service's own arguments are passed on)."""
    import argparse  # this process execs the coordinator next: none of this stays

    from core.home import coatcheck_home
    from proxy import ca, control

    p = argparse.ArgumentParser(add_help=False)
    for flag in ("--home", "--sockets", "--audit-log"):
        p.add_argument(flag, type=Path, default=None)
    opts, _ = p.parse_known_args(argv)
    paths = ProxyPaths.for_home(opts.home or coatcheck_home(), sockets=opts.sockets)
    ensure_private_dir(paths.dir)
    try:
        ca.ensure_ca(paths.confdir)
    except OSError:
        raise UsageError(
            f"could not create the proxy CA in {paths.confdir}; check that it is writable"
        ) from None
    if control.ping(paths.control) is not None:
        raise UsageError(
            f"a proxy service already answers at {paths.control} for this "
            "COATCHECK_HOME; stop it first, or use it: `coatcheck run` finds it by itself"
        )
    return Plan(
        home=paths.home,
        sockets=paths.sockets,
        audit_log=opts.audit_log or paths.audit_log,
        count=count,
        # each worker takes its share of --buffer-total (proxy.service)
        worker_argv=worker_command([*argv, f"--workers={count}"]),
    )


def become(plan: Plan) -> NoReturn:
    """Replace this process with the coordinator (same pid); raise if it can't be done."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-I", "-m", "proxy.coordinated", plan.encode()]
    try:
        os.execv(sys.executable, argv)  # noqa: S606 - this interpreter, our own module
    except OSError as exc:
        raise UsageError(f"could not start the coordinator ({exc.strerror or exc})") from None


def failed(exc: CoatcheckError) -> int:
    print(f"coatcheck proxy: error: {exc.message}", file=sys.stderr)
    return exc.exit_code


def main(argv: list[str]) -> int:
    """``python -m proxy.coordinated PLAN``: the coordinator, until SIGTERM or Ctrl-C."""
    plan = Plan.decode(argv[0])
    try:
        return _serve(plan)
    except CoatcheckError as exc:
        return failed(exc)
    finally:
        if plan.zygote_pid is not None:
            _stop_zygote(plan.zygote_pid)


def _serve(plan: Plan) -> int:
    paths = ProxyPaths(plan.home, plan.sockets)
    audit = AppendLog(plan.audit_log)
    coord = Coordinator(paths, plan.worker_argv, plan.count, audit)
    try:
        coord.bind()
        coord.start_workers()
        coord.control.serve()
        sys.stdout.buffer.write(wire.encode({"ok": True, "control": str(paths.control)}))
        sys.stdout.flush()
        pids = ", ".join(str(w.pid) for w in coord.workers)
        print(
            f"coatcheck proxy: ready with {plan.count} workers (pids {pids}); runs register at "
            f"{paths.control}; audit log {plan.audit_log}; stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        coord.run_until_stopped()
    finally:
        coord.close()
        audit.close()
    return 0


def _stop_zygote(pid: int) -> None:
    """Stop the zygote runner.proxyd started before this process became the coordinator (it
    is still our child; it removes its socket); killed if it takes longer than
    ``ZYGOTE_STOP_S``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # no pidfd here (Linux before 5.3): wait as long as it takes
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return
    try:
        if not select.select([fd], [], [], ZYGOTE_STOP_S)[0]:
            warn("the zygote (pid %d) did not stop; killing it", pid)
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
