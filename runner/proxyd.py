"""The proxy service's process: the proxy, with real values read from the vault.

This is where the two are composed (the proxy never imports the vault). ``coatcheck run``
starts it as ``python -I -m runner.proxyd --ephemeral ...``: ``-I`` keeps the current directory
(and PYTHONPATH) off ``sys.path``, so the installed coatcheck is what runs, wherever the user
stands. ``coatcheck proxy`` runs the same service in its own process: with more than one
worker (``--workers N``, one per core by default), this process prepares, starts the zygote and
then becomes (``exec``, same pid) a coordinator (proxy.coordinated, which imports neither
mitmproxy nor the vault) of workers it starts with ``--worker-dir``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runner.values import VaultValues


def open_vault_values(home: Path) -> VaultValues:
    from runner.values import VaultValues
    from vault.store import Vault

    return VaultValues(Vault.open(home))


def command(*args: str) -> list[str]:
    """The argv that starts this service as a child, independent of the current directory."""
    return [sys.executable, "-I", "-m", "runner.proxyd", *args]


def worker_command(args: list[str]) -> list[str]:
    """The argv of a worker of the coordinator running in this process: it dies with us."""
    return command("--parent-pid", str(os.getpid()), *args)


def main(argv: list[str] | None = None) -> int:
    """``--parent-pid PID`` (coatcheck serve's own proxy): stop when that process dies."""
    from proxy import workers

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "--parent-pid" and args[1].isdigit():
        from core.pids import die_with_parent

        die_with_parent(int(args[1]))
        args = args[2:]
        if workers.is_worker(args) and argv is None:
            # The death signal outlives an exec; ctypes, which asked for it, does not (0.4 MB
            # a worker).
            os.execv(sys.executable, command(*args))  # noqa: S606 - this very service
    from core.errors import UsageError

    try:
        count = workers.count_for(args)
    except UsageError as exc:
        print(f"coatcheck proxy: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if workers.is_worker(args):  # its coordinator has the zygote
        return _service(args)
    if count > 1:
        return _coordinator(args, count)
    from runner import zygote  # warm `coatcheck run`s fork from it (not for --ephemeral)

    launcher = zygote.spawn(args)
    try:
        return _service(args)
    finally:
        zygote.stop(launcher)


def _coordinator(args: list[str], count: int) -> int:
    """Prepare, start the zygote, and become the coordinator: returns only on an error."""
    from core.errors import CoatcheckError
    from proxy import coordinated
    from runner import zygote

    try:
        plan = coordinated.prepare(args, count=count, worker_command=worker_command)
    except CoatcheckError as exc:
        return coordinated.failed(exc)
    launcher = zygote.spawn(args)  # our child still once we are the coordinator, who stops it
    plan.zygote_pid = None if launcher is None else launcher.pid
    try:
        coordinated.become(plan)
    except CoatcheckError as exc:
        zygote.stop(launcher)
        return coordinated.failed(exc)


def _service(args: list[str]) -> int:
    from proxy import service  # mitmproxy and the vault: not in a coordinator

    return service.main(args, open_values=open_vault_values)


if __name__ == "__main__":
    sys.exit(main())
