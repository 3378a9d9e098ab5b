"""A zygote whose children run a fake ``coatcheck`` main (no Docker, no click): what the
launch protocol does with fds, environment, working directory and signals, observed directly.

Started as ``python -c "from tests.runner.zygote_fakes import serve; serve()" PATH [UID]``;
prints ``ready`` on stdout once it accepts connections, and ``a child ended`` each time it has
reaped one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from runner.zygote import Zygote


def fake_main(argv: list[str]) -> int:
    """``run echo``: out/err and exit 7; ``run where NAME``: the cwd, ``$NAME`` and whether the
    streams are terminals; ``run wait``: says ``waiting`` and waits for a signal; ``run
    --run-id ID ...`` (coatcheck serve's launcher): where it runs, on stderr, and exit 3."""
    what = argv[1] if len(argv) > 1 else ""
    if what == "--run-id":  # coatcheck serve's launcher
        print(f"serve run {argv[2]} in {os.getcwd()} home {os.environ.get('COATCHECK_HOME')}",
              file=sys.stderr)  # fmt: skip
        print("to /dev/null")
        return 3
    if what == "echo":
        print("out")
        print("err", file=sys.stderr)
        return 7
    if what == "where":
        print(os.getcwd())
        print(os.environ.get(argv[2], "<unset>"))
        print(Path(argv[3]).resolve() if len(argv) > 3 else "")
        umask = os.umask(0)
        print(f"stdout_tty={sys.stdout.isatty()} encoding={sys.stdout.encoding} "
              f"umask={umask:03o}", file=sys.stderr)  # fmt: skip
        return 0
    if what == "vanish":  # ends without an exit code when told to stop (as after kill -9)
        signal.signal(signal.SIGTERM, lambda _n, _f: os.kill(os.getpid(), signal.SIGKILL))
        print("waiting", flush=True)
        threading.Event().wait()
    if what == "wait":
        got: list[str] = []

        def stopped(signum: int, _frame: object) -> None:
            got.append(signal.Signals(signum).name)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, stopped)
        signal.signal(signal.SIGHUP, stopped)
        try:  # the signal may come as soon as "waiting" is out
            print("waiting", flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped by SIGINT", file=sys.stderr, flush=True)
            return 130
        except SystemExit as exc:
            print(f"stopped by {got[0]}", file=sys.stderr, flush=True)
            return int(exc.code or 1)
    print(f"fake: unknown {argv}", file=sys.stderr)
    return 2


def serve() -> None:
    path = Path(sys.argv[1])
    uid = int(sys.argv[2]) if len(sys.argv) > 2 else None

    def stop(_n: int, _f: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)

    def ready() -> None:
        print("ready", flush=True)

    def after_child() -> None:  # the real zygote removes orphaned sandboxes here
        print("a child ended", flush=True)

    with contextlib.suppress(SystemExit):
        Zygote(path, main=fake_main, uid=uid, on_ready=ready, after_child=after_child).serve()
