"""The HTTP server of ``coatcheck serve``: uvicorn (the only module that imports it), on a
socket the service bound itself. It runs until SIGTERM or SIGINT (uvicorn shuts down
gracefully, then hands the signal on to the service's own handler) or until ``stop`` is set."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn


def run_http(app: Any, sock: socket.socket, stop: threading.Event) -> None:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=10)  # fmt: skip
    server = uvicorn.Server(config)

    async def main() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stopped = asyncio.create_task(asyncio.to_thread(stop.wait))
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        try:
            await serving
        finally:
            stop.set()  # releases the waiting thread when the server ended first
            await stopped

    asyncio.run(main())
