"""The control socket of ``coatcheck serve``: ``runner/serve/wire.py`` requests, one a
connection, answered by ``Actions``. A private Unix socket (0600, in the service's 0700
directory): only the service's own user can deploy, pause or fire."""

from __future__ import annotations

import os
import socketserver
import threading
from pathlib import Path
from typing import Any

import structlog

from core.errors import CoatcheckError
from runner.serve.actions import Actions
from runner.serve.wire import MAX_LINE, Refused, Request, ok, refusal


def dispatch(actions: Actions, req: Request) -> dict[str, Any]:
    if req.op == "ping":
        return {"pid": os.getpid()}
    if req.op == "deploy":
        assert req.job_toml is not None and req.job_base is not None
        return actions.deploy(req.job_toml, req.job_base, req.source or f"{req.name}.toml")
    if req.op == "pause":
        return actions.pause(req.name, req.note)
    one = {"unpause": actions.unpause, "archive": actions.archive, "run": actions.run_now,
           "token": actions.token, "webhook": actions.webhook}  # fmt: skip
    return one[req.op](req.name)


class ControlServer:
    def __init__(self, path: Path, actions: Actions) -> None:
        log = structlog.get_logger("coatcheck.serve")

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_LINE + 1)
                op = "?"
                try:
                    req = Request.decode(line)
                    op = req.op
                    reply = ok(**dispatch(actions, req))
                except CoatcheckError as exc:
                    reply = refusal(exc)
                except Exception as exc:  # answered, logged, never the service's end
                    log.exception("control_error", op=op, error=type(exc).__name__)
                    reply = refusal(Refused(f"the service failed: {type(exc).__name__}"))
                log.info("control", op=op, ok=reply.startswith(b'{"ok": true'))
                self.wfile.write(reply)

        if path.exists():
            path.unlink()
        self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self._server.daemon_threads = True
        os.chmod(path, 0o600)
        self.path = path
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.5,),
                                        name="coatcheck-control", daemon=True)  # fmt: skip

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)
