"""One sandboxed run: register with the proxy, run the container, clean up, report.

The proxy is the running shared service when one answers on the control socket (the warm
path), otherwise an ephemeral service started for this run alone and stopped after it (it also
stops by itself if this process dies: it watches its stdin). Real values never pass through
here: the runner knows secret names and mints placeholders; the proxy reads values from the
vault.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core import logs, messages, placeholders
from core.errors import (
    CoatcheckError,
    ProxyUnavailable,
    RegistrationRefused,
    SandboxError,
    Stopped,
    UsageError,
)
from core.messages import Registered, Registration
from core.pids import wait_or_kill
from proxy import ca, control
from proxy.paths import ProxyPaths
from runner import proxyd

DEFAULT_IMAGE = "coatcheck/sandbox:latest"
SERVICE_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunRequest:
    command: tuple[str, ...]
    secrets: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    resolve: tuple[str, ...] = ()
    allow_cidr: tuple[str, ...] = ()
    upstream_ca: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE
    timeout: float | None = None
    on_leak: str = "log"


def new_run_id() -> str:
    return "r-" + secrets.token_hex(8)


def check_secrets_exist(home: Path, names: tuple[str, ...]) -> list[Any]:
    """The vault metadata of ``names`` (no key needed); SandboxError naming the fix if any is
    missing."""
    if not names:
        return []
    from vault.store import Vault

    known = {m.name: m for m in Vault.open(home).list()}
    missing = [n for n in names if n not in known]
    if missing:
        raise SandboxError(
            f"no secret named {', '.join(missing)} in the vault at {home}; add it with "
            f"`coatcheck vault set {missing[0]} --domains DOMAIN` (value on stdin)"
        )
    return [known[n] for n in names]


def check_flags(req: RunRequest) -> None:
    """Refuse bad --allow, --resolve, --allow-cidr and --on-leak before anything starts."""
    from proxy.runs import parse_run

    parse_run(
        {
            "run_id": "r-check",
            "allow": req.allow,
            "resolve": req.resolve,
            "allow_cidr": req.allow_cidr,
            "on_leak": req.on_leak,
        }
    )
    if req.secrets:
        from vault.keystore import default_keystore

        default_keystore()  # no key, no values: say how to fix it now, not mid-run


def registration(req: RunRequest, run_id: str, phs: dict[str, str]) -> Registration:
    pems = []
    for path in req.upstream_ca:
        try:
            pems.append(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"--upstream-ca {path}: can't read it ({exc.strerror})") from None
    return Registration(
        run_id=run_id,
        secrets=phs,
        allow=req.allow,
        resolve=req.resolve,
        allow_cidr=req.allow_cidr,
        upstream_ca_pem=tuple(pems),
        on_leak=req.on_leak,
        owner_pid=os.getpid(),
    )


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


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) raise ``Stopped`` in the main thread, so the
    container, the run's registration and an ephemeral proxy are removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if fired:  # cleanup is under way: a second signal must not cut it short
            return
        fired.append(signum)
        raise Stopped(signum, signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def execute(
    req: RunRequest,
    *,
    home: Path,
    sandboxes: Any = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    log: IO[str] | None = None,
) -> int:
    """Run ``req`` in a sandbox; return its exit code (124 timeout, 125 setup failure)."""
    from sandbox.docker import Sandboxes, SandboxSpec

    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    started = time.monotonic()
    run_id = new_run_id()
    check_flags(req)
    metas = check_secrets_exist(home, req.secrets)
    shaped = any(m.placeholder_format == "shaped" for m in metas)
    phs = {name: placeholders.mint() for name in req.secrets}
    reg = registration(req, run_id, phs)
    paths = ProxyPaths.for_home(home)
    cert = ca.ensure_ca(paths.confdir)
    bundle = ca.write_sandbox_bundle(cert, paths.sandbox_bundle)
    sandboxes = sandboxes or Sandboxes()
    _ensure_image(req.image, sandboxes, err)
    ephemeral: EphemeralProxy | None = None
    warm = control.ping(paths.control) is not None
    code = 125
    try:
        if warm:
            registered = Registered.from_json(control.call(paths.control, reg.to_json()))
            run_dir = Path(registered.run_dir)
            phs = dict(registered.placeholders)
        else:
            ephemeral = EphemeralProxy(home, reg)
            run_dir = ephemeral.run_dir
        sandboxes.reap_orphans()
        if ephemeral is not None and shaped:
            ephemeral.wait_ready()  # shaped placeholders are minted by the service
        # Otherwise the sandbox starts while the ephemeral proxy does: its init waits for the
        # run's socket, and `watch` kills it if the proxy refuses the run.
        if ephemeral is not None and ephemeral.ready.is_set() and ephemeral.reply:
            phs = dict(ephemeral.reply.get("placeholders", phs))
        spec = SandboxSpec(
            run_id=run_id,
            image=req.image,
            command=req.command,
            run_dir=run_dir,
            ca_bundle=bundle,
            env={**dict(req.env), **phs},
            timeout=req.timeout,
        )
        code = sandboxes.run(
            spec,
            stdout=out,
            stderr=err,
            on_started=ephemeral.watch if ephemeral is not None else None,
        )
        if ephemeral is not None and (refused := ephemeral.error()) is not None:
            code = 125
            raise RegistrationRefused(refused)
        return code
    finally:
        if warm:
            with contextlib.suppress(CoatcheckError):
                control.call(paths.control, messages.unregister(run_id))
        if ephemeral is not None:
            ephemeral.close()
        _log_run(log, run_id, req, code, started, warm)


def _ensure_image(image: str, sandboxes: Any, err: IO[bytes]) -> None:
    """coatcheck's own image is built on first use (and after an upgrade), with progress."""
    from images import build

    def progress(line: str) -> None:
        err.write(f"coatcheck: {line}\n".encode())
        err.flush()

    build.ensure(image, engine=sandboxes, progress=progress)


def _log_run(
    log: IO[str] | None, run_id: str, req: RunRequest, code: int, started: float, warm: bool
) -> None:
    if log is None:
        return
    logs.json_logger(log).info(
        logs.RUN_EVENT,
        **{
            logs.RUN_ID: run_id,
            logs.IMAGE: req.image,
            logs.SECRETS: list(req.secrets),
            logs.EXIT_CODE: code,
            logs.DURATION_MS: round((time.monotonic() - started) * 1000, 1),
            "proxy": "shared" if warm else "ephemeral",
        },
    )
