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
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core import logs, messages, placeholders
from core.errors import (
    CoatcheckError,
    ImageUnfit,
    RegistrationRefused,
    SandboxError,
    Stopped,
    UsageError,
)
from core.messages import Registered, Registration
from core.runids import new_run_id
from proxy import ca, control
from proxy.paths import ProxyPaths
from runner import public_trust
from runner.ephemeral import EphemeralProxy

if TYPE_CHECKING:
    from sandbox.docker import Limits

DEFAULT_IMAGE = "coatcheck/sandbox:latest"


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
    limits: Limits | None = None  # None: the sandbox's defaults
    workspace: Path | None = None  # agent runs: a host directory mounted at /workspace
    input_file: Path | None = None  # a trigger's body, untrusted: $COATCHECK_INPUT, read-only
    allow_opaque: tuple[str, ...] = ()  # hosts spliced without interception (proxy.opaque)


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


def rotation_warnings(home: Path, names: tuple[str, ...], *, now: datetime) -> tuple[str, ...]:
    """A warning for each of ``names`` that is overdue for rotation (``vault set
    --rotate-after``). Names not in the vault are left to ``check_secrets_exist``."""
    if not names:
        return ()
    from vault.rotation import overdue_warnings
    from vault.store import Vault

    known = {m.name: m for m in Vault.open(home).list()}
    return overdue_warnings([known[n] for n in dict.fromkeys(names) if n in known], now)


def check_flags(req: RunRequest) -> None:
    """Refuse bad --allow, --allow-opaque, --resolve, --allow-cidr and --on-leak before anything
    starts (an opaque pattern over a secret's domain is refused when the run registers)."""
    from proxy.runs import parse_run

    parse_run(
        {
            "run_id": "r-check",
            "allow": req.allow,
            "resolve": req.resolve,
            "allow_cidr": req.allow_cidr,
            "on_leak": req.on_leak,
            "allow_opaque": req.allow_opaque,
        }
    )
    if req.secrets:
        from vault.keystore import default_keystore

        default_keystore()  # no key, no values: say how to fix it now, not mid-run


def check_opaque(allow_opaque: tuple[str, ...], metas: list[Any]) -> None:
    """Refuse an --allow-opaque pattern over a domain one of the run's secrets is vaulted for
    now, before a sandbox starts (the service refuses it at registration too)."""
    if not allow_opaque or not metas:
        return
    from core.domains import parse_patterns
    from proxy.runs import opaque_conflicts

    domains = {m.name: parse_patterns(m.domains) for m in metas}
    conflicts = opaque_conflicts(parse_patterns(allow_opaque), domains)
    if conflicts:
        raise UsageError("; ".join(conflicts))


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
        allow_opaque=req.allow_opaque,
    )


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
    run_id: str | None = None,
) -> int:
    """Run ``req`` in a sandbox; return its exit code (124 timeout, 125 setup failure).
    ``run_id`` (from ``new_run_id``) when the caller records the run under it."""
    from sandbox.docker import Limits, Sandboxes, SandboxSpec

    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    started = time.monotonic()
    run_id = run_id or new_run_id()
    check_flags(req)
    metas = check_secrets_exist(home, req.secrets)
    check_opaque(req.allow_opaque, metas)
    shaped = any(m.placeholder_format == "shaped" for m in metas)
    phs = {name: placeholders.mint() for name in req.secrets}
    reg = registration(req, run_id, phs)
    paths = ProxyPaths.for_home(home)
    cert = ca.ensure_ca(paths.confdir)
    sandboxes = sandboxes or Sandboxes()
    _ensure_image(req.image, sandboxes, err, agent=req.workspace is not None)
    ephemeral: EphemeralProxy | None = None
    bundle: Path | None = None
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
        trust = cert if not req.allow_opaque else public_trust.with_public_cas(cert)
        bundle = _sandbox_bundle(trust, run_dir, paths)
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
            limits=req.limits if req.limits is not None else Limits(),
            workspace=req.workspace,
            input_file=req.input_file,
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
        if bundle is not None and bundle != paths.sandbox_bundle:
            bundle.unlink(missing_ok=True)
        if warm:
            with contextlib.suppress(CoatcheckError):
                control.call(paths.control, messages.unregister(run_id))
        if ephemeral is not None:
            ephemeral.close()
        _log_run(log, run_id, req, code, started, warm)


def _sandbox_bundle(cert: Path, run_dir: Path, paths: ProxyPaths) -> Path:
    """The proxy CA for the sandbox, beside the run's socket directory (not in it: that one
    holds the socket only): what the sandbox can see of its mounts (/proc/self/mountinfo) then
    names no path under COATCHECK_HOME. Removed with the run."""
    try:
        return ca.write_sandbox_bundle(cert, run_dir.with_name(run_dir.name + ".ca.pem"))
    except OSError:  # a shared proxy of another user owns the run directory
        return ca.write_sandbox_bundle(cert, paths.sandbox_bundle)


def _ensure_image(image: str, sandboxes: Any, err: IO[bytes], *, agent: bool = False) -> None:
    """coatcheck's own image is built on first use (and after an upgrade), with progress. An
    agent job's own image must carry the agent loop: it is built FROM coatcheck/agent (whose
    label it inherits)."""
    from images import build

    def progress(line: str) -> None:
        err.write(f"coatcheck: {line}\n".encode())
        err.flush()

    build.ensure(image, engine=sandboxes, progress=progress)
    labels = sandboxes.image_labels(image) if agent else None
    if labels is not None and labels.get(build.LABEL_IMAGE) not in ("agent", "claude-code"):
        raise ImageUnfit(
            f"{image} has no coatcheck agent loop (/opt/coatcheck/agent), so it cannot run an "
            f"agent job; build it FROM {build.AGENT} (e.g. a Dockerfile starting "
            f'"FROM {build.AGENT}"), or leave image unset to use {build.AGENT}'
        )


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
