"""Running mitmproxy: the master, its few addons, and the hand-off of each run's streams.

With :mod:`proxy.addon`, the only modules that import mitmproxy. The service calls
:func:`serve`; ``on_running`` receives a handler that feeds one accepted stream of a run into
mitmproxy under that run's synthetic peer name (see :mod:`proxy.identity`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, options
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from proxy import audit as audit_mod
from proxy.addon import Coatcheck
from proxy.engine import Engine
from proxy.identity import run_peername

StreamHandler = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Any]


class _RunWriter:
    """A StreamWriter that reports a run's synthetic peer name to mitmproxy."""

    def __init__(self, writer: asyncio.StreamWriter, peer: tuple[str, int]) -> None:
        self._writer = writer
        self._peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "sockname":
            return ("127.0.0.1", 0)
        return self._writer.get_extra_info(name, default)

    # The calls mitmproxy makes per write, passed straight through (no __getattr__ lookup).
    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _Running:
    def __init__(self, on_running: Callable[[StreamHandler], Any]) -> None:
        self.on_running = on_running

    async def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        instance = next(iter(proxyserver.servers))

        async def handle(run_id: str, reader: asyncio.StreamReader, writer: Any) -> None:
            await instance.handle_stream(reader, _RunWriter(writer, run_peername(run_id)))

        result = self.on_running(handle)
        if asyncio.iscoroutine(result):
            await result


def configure(master: Master, confdir: str, upstream_ca: str | None) -> None:
    master.options.update(
        mode=["regular@127.0.0.1:0"],
        confdir=confdir,
        connection_strategy="lazy",
        ssl_insecure=False,
        http2=True,
        ssl_verify_upstream_trusted_ca=upstream_ca,
    )


async def serve(
    engine: Engine,
    audit: audit_mod.Audit,
    *,
    confdir: str,
    upstream_ca: str | None,
    on_running: Callable[[StreamHandler], Any],
    ready: Callable[[Callable[[], None], Callable[[str | None], None]], None],
) -> None:
    """Run mitmproxy with the coatcheck addon until shut down."""
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    master = Master(options.Options(), with_termlog=False)
    # Only what an intercepting explicit proxy needs: no onboarding app, no map/modify/replay
    # features, no scripts. Fewer addons is less attack surface and less work per request.
    master.addons.add(
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
    )
    master.addons.add(Coatcheck(engine, audit), _Running(on_running))
    configure(master, confdir, upstream_ca)

    def set_ca(path: str | None) -> None:
        master.options.update(ssl_verify_upstream_trusted_ca=path)

    ready(master.shutdown, set_ca)
    await master.run()
