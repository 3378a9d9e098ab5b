"""An ephemeral proxy service: started for one run alone, in a private socket directory, and
tied to the runner's lifetime (it reads the run's registration from its stdin and exits when
stdin closes, so it dies with the runner even after a crash)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import messages
from core.errors import CoatcheckError, ProxyUnavailable, RegistrationRefused
from core.messages import Registration
from core.pids import wait_or_kill
from proxy.paths import ProxyPaths
from runner import proxyd

SERVICE_START_TIMEOUT_S = 30.0


class EphemeralProxy:
    """A proxy service for one run, in a private socket directory, tied to our lifetime."""

    def __init__(self, home: Path, reg: Registration) -> None:
        self.sockets = Path(tempfile.mkdtemp(prefix="cc-"))
        os.chmod(self.sockets, 0o711)  # noqa: S103 - traversable, not listable
        self.paths = ProxyPaths.for_home(home, sockets=self.sockets)
        env = dict(os.environ, COATCHECK_HOME=str(home))
        self.proc = subprocess.Popen(
            proxyd.command("--ephemeral", "--home", str(home), "--sockets", str(self.sockets)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert self.proc.stdin is not None  # noqa: S101
        self.proc.stdin.write(reg.encode())
        self.proc.stdin.flush()
        self.reply: dict[str, Any] | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._read_reply, daemon=True).start()
        run_dir = self.paths.run_dir(reg.run_id)
        run_dir.mkdir(parents=True, mode=0o755)
        os.chmod(run_dir.parent, 0o711)  # noqa: S103
        os.chmod(run_dir, 0o755)  # noqa: S103
        self.run_dir = run_dir

    def _read_reply(self) -> None:
        assert self.proc.stdout is not None  # noqa: S101
        line = self.proc.stdout.readline()
        with contextlib.suppress(CoatcheckError):
            self.reply = messages.decode(line) if line else None
        self.ready.set()

    def error(self) -> str | None:
        """The service's refusal, if it has answered with one."""
        if self.reply is not None and not self.reply.get("ok"):
            return str(self.reply.get("error"))
        if self.ready.is_set() and self.reply is None:
            return "the proxy service exited before it was ready"
        return None

    def watch(self, kill: Callable[[], None]) -> None:
        """Once the sandbox runs: kill it if the service refuses the run (the job would only
        see its proxy vanish)."""

        def watcher() -> None:
            self.ready.wait(SERVICE_START_TIMEOUT_S)
            if self.error() is not None or not self.ready.is_set():
                kill()

        threading.Thread(target=watcher, daemon=True).start()

    def wait_ready(self, timeout: float = SERVICE_START_TIMEOUT_S) -> None:
        if not self.ready.wait(timeout):
            raise ProxyUnavailable("the proxy service did not start in time")
        if (err := self.error()) is not None:
            raise RegistrationRefused(err)

    def close(self) -> None:
        """Stop the service: a service still starting is killed (it holds nothing yet); a
        running one sees its stdin close, unregisters the run and exits."""
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.close()
        if not self.ready.is_set():
            self.proc.kill()
        wait_or_kill(self.proc, timeout=5)
        shutil.rmtree(self.sockets, ignore_errors=True)
