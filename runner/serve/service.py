"""``coatcheck serve``: the scheduler, the proxy and the HTTP API in one long-running service.

Start-up: the history database is opened (migrated); runs a killed service left ``pending`` or
``running`` become ``error: interrupted`` and their sandboxes are removed; the shared proxy
service is started unless one answers already (it is the same service ``coatcheck proxy``
runs); the control socket, the scheduler thread and the HTTP API (uvicorn, on a socket bound
here, so a taken port is a clear error) start. SIGTERM or SIGINT: the HTTP API stops taking
requests, queued runs are cancelled, running sandboxes are stopped and recorded as
``cancelled``, notifications are flushed, the proxy this service started is stopped.
``kill -9`` at any moment is safe: each run dies with the service (PR_SET_PDEATHSIG), and the
next start records what was cut short.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Final

import structlog

from core.errors import CoatcheckError, ProxyUnavailable, UsageError
from runner.history.db import history_path
from runner.history.retention import remove_run_dirs
from runner.history.store import History
from runner.serve.actions import Actions
from runner.serve.book import Book
from runner.serve.control import ControlServer
from runner.serve.launcher import Launcher, ServePaths
from runner.serve.notices import Notices
from runner.serve.owners import owner, owner_alive
from runner.serve.scheduler import Scheduler
from runner.serve.supervisor import Supervisor
from runner.serve.wire import Request, ServiceUnavailable, call

PROXY_START_S: Final = 60.0


def configure_logging(stream: Any = None) -> None:
    """One JSON object a line on ``stream`` (stderr), for every logger of the service."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        logger_factory=structlog.WriteLoggerFactory(sys.stderr if stream is None else stream),
        cache_logger_on_first_use=True,
    )


def bind(listen: tuple[str, int]) -> socket.socket:
    host, port = listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"can't listen on {host}:{port} ({exc.strerror or exc}); is another coatcheck "
            "serve running? Choose another address with --listen HOST:PORT"
        ) from None
    sock.listen(128)
    return sock


def ensure_proxy(home: Path, stop: threading.Event) -> subprocess.Popen[bytes] | None:
    """The shared proxy service: the one that answers, or a child of ours."""
    from proxy import control
    from proxy.paths import ProxyPaths
    from runner import proxyd

    where = ProxyPaths.for_home(home).control
    if control.ping(where) is not None:
        return None
    proc = subprocess.Popen(  # noqa: S603 - our own service, by sys.executable
        proxyd.command("--parent-pid", str(os.getpid())),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "COATCHECK_HOME": str(home)},
    )  # fmt: skip
    waited = threading.Event()
    for _ in range(int(PROXY_START_S * 10)):
        if control.ping(where) is not None:
            return proc
        if proc.poll() is not None or stop.is_set():
            break
        waited.wait(0.1)  # an external process: nothing to await but its socket
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    raise ProxyUnavailable("the proxy service did not start; run `coatcheck proxy` to see why")


def recover(history: History, home: Path, log: Any) -> None:
    """What a killed service left behind: its unfinished runs and their sandboxes (a live
    service's runs, on this database too, are left alone)."""
    for run in history.runs.interrupt_unfinished(alive=owner_alive):
        record = home / "runs" / run.id / "run.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(record.read_text())
            if data.get("status") == "running":
                data.update(status="error", error="interrupted: coatcheck serve stopped")
                record.write_text(json.dumps(data))
        log.warning("interrupted", run_id=run.id, deployment=run.deployment)
    with contextlib.suppress(CoatcheckError):
        from sandbox.docker import Sandboxes

        Sandboxes().reap_orphans()


def serve(home: Path, listen: tuple[str, int]) -> int:
    configure_logging()
    log = structlog.get_logger("coatcheck.serve")
    paths = ServePaths(home)
    paths.private()
    sock = bind(listen)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    history = History.open(history_path(home), owner=owner())
    recover(history, home, log)
    proxy = ensure_proxy(home, stop)
    parts = _compose(home, paths, history, f"http://{listen[0]}:{listen[1]}")
    actions, scheduler, supervisor, notices = parts
    control = _control(paths.control, actions, log)
    threading.Thread(target=scheduler.run, args=(stop,), name="coatcheck-scheduler",
                     daemon=True).start()  # fmt: skip
    log.info("serve_started", listen=f"{listen[0]}:{listen[1]}", pid=os.getpid(),
             home=str(home), proxy="own" if proxy else "shared")  # fmt: skip
    try:
        from runner.console.admin_token import admin_token_hash
        from runner.console.app import console_routes
        from runner.serve.http import run_http
        from runner.serve.public import public_app

        console = console_routes(history_path=history_path(home), home=home, actions=actions,
                                 admin_token_hash=lambda: admin_token_hash(home))  # fmt: skip
        run_http(public_app(actions, extra_routes=console), sock, stop)
    finally:
        stop.set()
        scheduler.poke()
        supervisor.stop_all()
        notices.close()
        if control is not None:
            control.close()
        if proxy is not None:
            proxy.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proxy.wait(timeout=30)
        history.close()
        log.info("serve_stopped", pid=os.getpid())
    return 0


def _compose(home: Path, paths: ServePaths, history: History, base_url: str) -> tuple[Any, ...]:
    from runner.jobcheck import check_vault
    from runner.run import check_secrets_exist
    from runner.values import VaultValues
    from vault.secret import SecretValue
    from vault.store import Vault

    values = VaultValues(Vault.open(home))
    book = Book()

    def reveal(name: str) -> str:
        value = values.reveal(name)
        if value is None:
            raise CoatcheckError(f"{name} is not in the vault")
        return value

    def pause_after(name: str) -> int:
        dep = history.deployments.find(name)
        sched = book.job(dep).schedule if dep is not None else None
        return sched.pause_after_failures if sched else 5

    def check_secrets(job: Any, source: Path) -> None:
        check_secrets_exist(home, job.secrets)
        check_vault(job, source, home=home)

    def store(name: str, value: str, domain: str) -> None:
        Vault.open(home).set(name, SecretValue(value), [domain])

    def prune() -> None:
        with History.open(history_path(home)) as own:  # a long read: its own connection
            own.runs.interrupt_unfinished(alive=owner_alive)  # a peer service that died
            remove_run_dirs(own.prune(), runs_root=home / "runs")

    notices = Notices(history, book, base_url=base_url, resolve_url=reveal)
    poke: list[Any] = []
    supervisor = Supervisor(history, Launcher(paths), notify=notices, pause_after=pause_after,
                            on_change=lambda: poke[0]())  # fmt: skip
    scheduler = Scheduler(history, supervisor, book, notify=notices, prune=prune)
    poke.append(scheduler.poke)
    actions = Actions(history, book, supervisor, check_secrets=check_secrets,
                      reveal=values.reveal, store_secret=store, poke=scheduler.poke)  # fmt: skip
    return actions, scheduler, supervisor, notices


def _control(path: Path, actions: Actions, log: Any) -> ControlServer | None:
    """The control socket, unless another service of this home answers on it."""
    with contextlib.suppress(ServiceUnavailable):
        call(path, Request("ping"), timeout=2)
        log.warning("control_socket_taken", path=str(path),
                    note="another coatcheck serve answers there; this one runs its schedule "
                    "and HTTP API only")  # fmt: skip
        return None
    server = ControlServer(path, actions)
    server.start()
    return server
