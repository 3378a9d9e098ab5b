"""Running mitmproxy: the master, its few addons, the hand-off of each run's streams, and the
limits on request bodies it buffers.

With :mod:`proxy.addon`, the only modules that import mitmproxy. The service calls
:func:`serve`; ``on_running`` receives a handler that feeds one accepted stream of a run into
mitmproxy under that run's synthetic peer name (see :mod:`proxy.identity`).

**Buffered request bodies.** mitmproxy reads a body it does not stream into memory, whole,
with no limit of its own but a global one that would also cut large downloads. So its HTTP
stream's states are wrapped (:func:`_install`; mitmproxy is pinned to the minor release whose
internals these are): a body to be buffered gets a :class:`~proxy.limits.BodyGate`, which
takes each chunk from the run's and the proxy's budget under the inspection cap and before
the body's deadline (checked on every chunk and on a timer tick); past any of them the request
is answered at once (413, 429, 408) and no more of its body is read. A request refused on its
head (a declared ``Content-Length`` over the cap, a leak, a bad destination) is answered right
after its head too, without reading its body. The budget is given back when the flow ends.

**Bulk bodies.** mitmproxy reads 64 KiB from a connection at a time; every read is one trip
through all its layers and the addon's stream callbacks. Here a connection is read up to
:data:`READ_SIZE` (256 KiB, what asyncio takes from a socket at once) at a time
(:func:`_handle_connection`): a large download or upload costs about a third less CPU. No buffer
grows for it: a read returns what asyncio already holds, under its usual limits. (TLS output
still leaves in mitmproxy's 64 KiB writes: reading it from OpenSSL in larger pieces costs more
in allocation than it saves in writes.)
"""

# ruff: noqa: E402  (mitmproxy is imported after _bare_package, below)
from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import time
import weakref
from collections.abc import Callable, Generator
from typing import Any


def _bare_package(name: str) -> None:
    """Register package ``name`` without running its ``__init__``; its submodules import as
    usual. ``mitmproxy.addons/__init__`` imports every default addon (flask, jinja2, ldap3...):
    about 15 MB and 130 ms per proxy process, for addons coatcheck never loads."""
    spec = importlib.util.find_spec(name)
    if name in sys.modules or spec is None or spec.submodule_search_locations is None:
        return
    sys.modules[name] = importlib.util.module_from_spec(spec)


# Before anything imports it (mitmproxy.master does); hence the imports below this line.
_bare_package("mitmproxy.addons")

from mitmproxy import ctx, http, options
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.proxy import commands, events, server
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    HttpStream,
    RequestData,
    RequestEndOfMessage,
    ResponseEndOfMessage,
    ResponseProtocolError,
    SendHttp,
)

from proxy import audit as audit_mod
from proxy import hookless
from proxy.addon import Coatcheck, refusal
from proxy.engine import Engine
from proxy.flowstate import state_of
from proxy.identity import run_id_of, run_peername
from proxy.limits import BodyGate, BufferBudget, Limits, Refusal

StreamHandler = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Any]
Commands = Generator[commands.Command, Any, None]
GATE = "coatcheck.body_gate"  # flow.metadata: the BodyGate of a body being buffered
TICK_S = 1.0  # how often a body being buffered is checked against its deadline
READ_SIZE = 256 * 1024  # what mitmproxy reads from a connection at a time (its own: 64 KiB)


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


class _Reads:
    """A connection's reader that gives mitmproxy up to :data:`READ_SIZE` bytes a read: a bulk
    body passes in fewer, larger chunks (each one costs a trip through every layer)."""

    __slots__ = ("_reader",)

    def __init__(self, reader: Any) -> None:
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(max(n, READ_SIZE) if n >= 0 else n)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


_HANDLE_CONNECTION = server.ConnectionHandler.handle_connection


async def _handle_connection(self: server.ConnectionHandler, connection: Any) -> None:
    io = self.transports.get(connection)
    if io is not None and io.reader is not None and connection.transport_protocol == "tcp":
        io.reader = _Reads(io.reader)  # type: ignore[assignment]
    await _HANDLE_CONNECTION(self, connection)


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


class Bodies:
    """The gates of buffered request bodies: one budget, one clock. An addon: a flow's gate
    gives its bytes back when the flow ends."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = BufferBudget(limits.run_buffer_bytes, limits.total_buffer_bytes)
        self.timeout, self.clock = limits.body_timeout_s, clock
        self.tick = min(TICK_S, self.timeout)

    def open(self, flow: http.HTTPFlow) -> BodyGate:
        run_id = run_id_of(flow.client_conn.peername) or ""
        deadline = self.clock() + self.timeout
        gate = flow.metadata[GATE] = BodyGate(
            self.budget, run_id, deadline=deadline, timeout=self.timeout
        )
        weakref.finalize(flow, gate.release)  # in case a flow ends without either hook
        return gate

    def response(self, flow: http.HTTPFlow) -> None:
        _release(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        _release(flow)


def _release(flow: http.HTTPFlow) -> None:
    gate = flow.metadata.pop(GATE, None)
    if isinstance(gate, BodyGate):
        gate.release()


_bodies: Bodies | None = None
_WAIT_HEADERS = HttpStream.state_wait_for_request_headers
_CONSUME = HttpStream.state_consume_request_body
_HANDLE = HttpStream._handle_event
_PASSTHROUGH = HttpStream.passthrough


def _wait_for_request_headers(self: HttpStream, event: Any) -> Commands:
    yield from _WAIT_HEADERS(self, event)
    consuming = self.client_state == self.state_consume_request_body
    if _bodies is None or event.end_stream or not consuming:
        return
    if self.flow.response is not None:  # refused on its head: answered now, body unread
        yield from _answer(self, None)
        return
    _bodies.open(self.flow)
    yield commands.RequestWakeup(_bodies.tick)


def _consume_request_body(self: HttpStream, event: Any) -> Commands:
    gate = self.flow.metadata.get(GATE)
    if _bodies is not None and isinstance(gate, BodyGate) and gate.receiving:
        if isinstance(event, RequestData):
            refused = gate.feed(len(event.data), _bodies.clock())
            if refused is not None:
                yield from _answer(self, refused)
                return
        elif isinstance(event, RequestEndOfMessage):
            gate.receiving = False  # complete: held (and counted) until the flow ends
    yield from _CONSUME(self, event)


def _handle_event(self: HttpStream, event: Any) -> Commands:
    if not isinstance(event, events.Wakeup):
        yield from _HANDLE(self, event)
        return
    gate = self.flow.metadata.get(GATE)
    if _bodies is None or not isinstance(gate, BodyGate) or not gate.receiving:
        return
    refused = gate.overdue(_bodies.clock())
    if refused is not None:
        yield from _answer(self, refused)
    else:
        yield commands.RequestWakeup(_bodies.tick)


def _passthrough(self: HttpStream, event: Any) -> Commands:
    if not isinstance(event, events.Wakeup):  # a tick after an upgrade: nothing to check
        yield from _PASSTHROUGH(self, event)


def _answer(self: HttpStream, refused: Refusal | None) -> Commands:
    """Answer a request whose body is still coming, with ``refused`` (or the refusal its head
    got), and read no more of it: HTTP/1 closes the connection, HTTP/2 resets the stream."""
    _release(self.flow)
    self.request_body_buf.clear()
    if refused is not None:
        state_of(self.flow.metadata).decision = refused.decision
        self.flow.response = refusal(refused.decision, refused.status)
    self.client_state = self.state_errored
    yield from self.send_response()  # the response hook writes the audit line
    client = self.context.client
    yield SendHttp(ResponseEndOfMessage(self.stream_id), client)
    yield SendHttp(ResponseProtocolError(self.stream_id, "body not read", ErrorCode.CANCEL), client)


def _install(bodies: Bodies) -> None:
    global _bodies
    _bodies = bodies
    for name, wrapper, original in (
        ("state_wait_for_request_headers", _wait_for_request_headers, _WAIT_HEADERS),
        ("state_consume_request_body", _consume_request_body, _CONSUME),
        ("_handle_event", _handle_event, _HANDLE),
        ("passthrough", _passthrough, _PASSTHROUGH),
    ):
        wrapper.__name__ = original.__name__  # mitmproxy's repr names a stream's states
        setattr(HttpStream, name, wrapper)
    server.ConnectionHandler.handle_connection = _handle_connection  # type: ignore[method-assign]


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
    limits: Limits | None = None,
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
    bodies = Bodies(limits or Limits())
    _install(bodies)
    hookless.install(engine)  # trailers and WebSocket control frames
    master.addons.add(Coatcheck(engine, audit), bodies, _Running(on_running))
    configure(master, confdir, upstream_ca)

    def set_ca(path: str | None) -> None:
        master.options.update(ssl_verify_upstream_trusted_ca=path)

    ready(master.shutdown, set_ca)
    await master.run()
