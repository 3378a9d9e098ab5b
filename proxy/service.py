"""The proxy service: mitmproxy with the coatcheck addon, a control socket, one socket per run.

Run it shared with ``coatcheck proxy`` (runs reuse it: the warm path), or let ``coatcheck run``
start an ephemeral one for a single run (``python -I -m runner.proxyd --ephemeral``): it reads the
run's registration from stdin and exits when stdin closes, so it dies with its runner even after
a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

from core import messages, placeholders
from core.errors import CoatcheckError, UsageError
from core.home import coatcheck_home, ensure_private_dir
from core.messages import Registered, Registration
from core.pids import alive
from proxy import ca, control, limits, workers
from proxy.appendlog import AppendLog
from proxy.audit import Audit
from proxy.conns import RunConnections, raise_open_files_limit
from proxy.engine import Engine, SecretValues
from proxy.limits import Limits
from proxy.logscrub import install_log_scrubber
from proxy.paths import ProxyPaths
from proxy.runs import RunPolicy, parse_resolve, parse_run
from proxy.splice import OpaqueTunnels
from proxy.trust import UpstreamTrust

REAP_INTERVAL_S = 2.0


class ProxyService:
    def __init__(
        self,
        paths: ProxyPaths,
        engine: Engine,
        values: Any,
        *,
        upstream_cas: list[str] | None = None,
        limits: Limits | None = None,
        worker_dir: Path | None = None,
    ) -> None:
        self.paths = paths
        self.engine = engine
        self.values = values  # VaultValues-like: reveal(), meta()
        # A worker of a coordinated service has a directory of its own, under the socket
        # directory: its control socket and its trust bundles (the others' are not its own).
        self.worker_dir = worker_dir
        self.control = paths.control if worker_dir is None else worker_dir / "control.sock"
        self.trust = UpstreamTrust(worker_dir or paths.sockets, upstream_cas)
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._handle: Callable[..., Any] | None = None
        self.shutdown: Callable[[], None] = lambda: None
        self.ephemeral_owner: int | None = None
        self.limits = limits or Limits()
        self.conns = RunConnections(self.limits)  # each run's connections: capped, idle closed

    # -- lifecycle --------------------------------------------------------------------
    def ready(self, shutdown: Callable[[], None], set_ca: Callable[[str | None], None]) -> None:
        self.shutdown, self.trust.apply = shutdown, set_ca

    async def on_running(self, handle: Callable[..., Any]) -> None:
        self._handle = handle
        ensure_private_dir(self.paths.sockets)
        (self.paths.sockets / "runs").mkdir(mode=0o711, exist_ok=True)
        control = self.control
        with contextlib.suppress(FileNotFoundError):
            control.unlink()
        await asyncio.start_unix_server(self._control, path=str(control))
        os.chmod(control, 0o600)
        asyncio.get_running_loop().create_task(self._reaper())

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            for run in self.engine.runs():
                if not alive(run.owner_pid):
                    await self.unregister(run.run_id)
            if self.ephemeral_owner is not None and not alive(self.ephemeral_owner):
                self.shutdown()  # an ephemeral service lives only as long as its runner

    # -- control ----------------------------------------------------------------------
    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            reply = await self.dispatch(messages.decode(line))
        except CoatcheckError as exc:
            reply = messages.refusal(exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            reply = messages.refusal(f"bad control request: {type(exc).__name__}")
        writer.write(messages.encode(reply))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        op = messages.op_of(req)
        if op == "ping":
            return {"ok": True, "pid": os.getpid(), "runs": len(self.engine.runs())}
        if op == "register":
            return (await self.register(Registration.from_json(req))).to_json()
        await self.unregister(str(req.get("run_id")))
        return {"ok": True}

    def policy_for(self, reg: Registration) -> RunPolicy:
        secrets = []
        for name, placeholder in reg.secrets.items():
            meta = self.values.meta(name)
            if meta is None:
                raise UsageError(
                    f"no secret named {name} in the vault; add it with "
                    f"`coatcheck vault set {name} --domains DOMAIN`"
                )
            if meta.placeholder_format == "shaped":
                value = self.values.reveal(name)
                placeholder = placeholders.mint_shaped(value) if value else placeholder
            elif not placeholders.is_opaque(str(placeholder)):
                raise UsageError(f"placeholder for {name} is not a coatcheck placeholder")
            secrets.append(
                {
                    "name": name,
                    "placeholder": placeholder,
                    "domains": list(meta.domains),
                    "surfaces": list(meta.surfaces),
                    "methods": list(meta.methods),
                    "paths": list(meta.paths),
                }
            )
        return parse_run(
            {
                "run_id": reg.run_id,
                "secrets": secrets,
                "allow": reg.allow,
                "resolve": reg.resolve,
                "allow_cidr": reg.allow_cidr,
                "on_leak": reg.on_leak,
                "owner_pid": reg.owner_pid,
                "allow_opaque": reg.allow_opaque,
            }
        )

    async def register(self, reg: Registration) -> Registered:
        run = self.policy_for(reg)
        if run.run_id in self._servers:
            raise UsageError(f"run {run.run_id} is already registered")
        self.engine.register(run)
        if reg.upstream_ca_pem:
            self.trust.add(run.run_id, list(reg.upstream_ca_pem))
        run_dir = self.paths.run_dir(run.run_id)
        run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(run_dir, 0o755)  # noqa: S103 - the sandbox user traverses it
        sock = self.paths.run_socket(run.run_id)
        handle = self._handle
        assert handle is not None  # noqa: S101
        accept = functools.partial(self.conns.serve, run.run_id, handle)
        self._servers[run.run_id] = await asyncio.start_unix_server(accept, path=str(sock))
        os.chmod(sock, 0o666)  # noqa: S103 - the sandbox user must connect; the directory is its own
        return Registered(str(sock), str(run_dir), {s.name: s.placeholder for s in run.secrets})

    async def unregister(self, run_id: str) -> None:
        self.engine.unregister(run_id)
        server = self._servers.pop(run_id, None)
        if server is not None:
            server.close()
        self.trust.drop(run_id)
        shutil.rmtree(self.paths.run_dir(run_id), ignore_errors=True)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="coatcheck-proxy-service")
    p.add_argument("--home", type=Path, default=None)
    p.add_argument("--sockets", type=Path, default=None)
    p.add_argument("--ephemeral", action="store_true")
    p.add_argument("--resolve", action="append", default=[])
    p.add_argument("--upstream-ca", action="append", default=[])
    p.add_argument("--audit-log", type=Path, default=None)
    p.add_argument(
        workers.WORKERS_FLAG, type=int, default=None, metavar="N",
        help="processes to spread runs over (default: one per core; not with --ephemeral)",
    )  # fmt: skip
    p.add_argument(workers.WORKER_DIR_FLAG, type=Path, default=None, help=argparse.SUPPRESS)
    limits.add_arguments(p)
    return p.parse_args(argv)


OpenValues = Callable[[Path], SecretValues]


def build(args: argparse.Namespace, open_values: OpenValues) -> ProxyService:
    """The service for ``args``; ``open_values(home)`` is where real values come from (the
    vault, composed in by the runner: the proxy never imports it)."""
    bounds = limits.from_args(args)  # bad limits fail before anything is set up
    if args.worker_dir is not None and args.workers:  # a worker's share of the total
        share = max(bounds.run_buffer_bytes, bounds.total_buffer_bytes // args.workers)
        bounds = dataclasses.replace(bounds, total_buffer_bytes=share)
    home = args.home or coatcheck_home()
    paths = ProxyPaths.for_home(home, sockets=args.sockets)
    ensure_private_dir(paths.dir)
    ca.ensure_ca(paths.confdir)
    values = open_values(home)  # the key is fetched when a value is first needed
    engine = Engine(values, resolve=parse_resolve(args.resolve))
    return ProxyService(paths, engine, values, upstream_cas=args.upstream_ca, limits=bounds,
                        worker_dir=args.worker_dir)  # fmt: skip


async def amain(argv: list[str], open_values: OpenValues) -> int:
    from proxy import mitm

    args = _parse_args(argv)
    service = build(args, open_values)
    install_log_scrubber(service.engine)
    coordinator = workers.CoordinatorSocket(service.paths.control) if args.worker_dir else None
    shared = not args.ephemeral and coordinator is None
    if shared and control.ping(service.paths.control) is not None:
        raise UsageError(
            f"a proxy service already answers at {service.paths.control} for this "
            "COATCHECK_HOME; stop it first, or use it: `coatcheck run` finds it by itself"
        )
    audit_path = args.audit_log or service.paths.audit_log
    audit_stream = AppendLog(audit_path)  # a line per write(): workers share the file
    audit = service.conns.audit = Audit(cast(IO[str], audit_stream))
    idle = service.limits.idle_timeout_s
    service.conns.opaque = OpaqueTunnels(service.engine, audit, timeout=idle)
    raise_open_files_limit()  # one run's connections must not use up what the others need
    loop = asyncio.get_running_loop()
    initial: Registration | None = None
    if args.ephemeral:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        initial = Registration.from_json(messages.decode(line)) if line.strip() else None
        # Watch stdin from now on: a runner that dies while we start must still stop us.
        loop.run_in_executor(None, _wait_eof, service, loop)

    async def on_running(handle: Callable[..., Any]) -> None:
        await service.on_running(handle)
        if initial is not None:
            service.ephemeral_owner = initial.owner_pid
            try:
                reply = (await service.register(initial)).to_json()
            except CoatcheckError as exc:
                reply = messages.refusal(exc.message)
            try:
                sys.stdout.buffer.write(messages.encode(reply))
                sys.stdout.flush()
            except OSError:  # the runner is gone
                reply["ok"] = False
            if not reply["ok"]:
                service.shutdown()
        elif coordinator is not None:  # a worker: its coordinator waits for this line
            sys.stdout.buffer.write(messages.encode({"ok": True, "control": str(service.control)}))
            sys.stdout.flush()
        else:
            sys.stdout.buffer.write(
                messages.encode({"ok": True, "control": str(service.paths.control)})
            )
            sys.stdout.flush()
            print(
                f"coatcheck proxy: ready; runs register at {service.paths.control}; "
                f"audit log {audit_path}; stop with Ctrl-C",
                file=sys.stderr,
                flush=True,
            )

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: service.shutdown())
    upstream = service.trust.bundle()
    try:
        await mitm.serve(
            service.engine,
            audit,
            confdir=str(service.paths.confdir),
            limits=service.limits,
            upstream_ca=upstream,
            on_running=on_running,
            ready=service.ready,
        )
    finally:
        if coordinator is not None:  # first: nothing below may keep a dead coordinator's socket
            coordinator.remove_if_orphaned()
        for run in service.engine.runs():
            await service.unregister(run.run_id)
        service.trust.remove()
        if initial is None:
            with contextlib.suppress(FileNotFoundError):
                service.control.unlink()
        else:  # an ephemeral service's socket directory is its own: leave nothing behind
            shutil.rmtree(service.paths.sockets, ignore_errors=True)
        audit_stream.close()
    return 0


def _wait_eof(service: ProxyService, loop: asyncio.AbstractEventLoop) -> None:
    """Stop when the runner closes our stdin (or dies): at once if still starting."""
    while sys.stdin.readline():
        pass
    if service._handle is None:  # not serving yet: nothing to unregister, nothing to wait for
        shutil.rmtree(service.paths.sockets, ignore_errors=True)
        os._exit(0)
    loop.call_soon_threadsafe(service.shutdown)


def main(argv: list[str], *, open_values: OpenValues) -> int:
    try:
        return asyncio.run(amain(argv, open_values))
    except CoatcheckError as exc:
        print(f"coatcheck proxy: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
