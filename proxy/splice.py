"""Opaque tunnels on the wire: take a run's CONNECT to an opaque host before mitmproxy sees it,
check it through the engine, and splice the TLS stream to the checked address.

:meth:`OpaqueTunnels.take` reads a stream's first bytes (only for a run with opaque patterns).
Anything but a CONNECT to one of its opaque destinations (:func:`proxy.opaque.decide_opaque`)
goes on to mitmproxy with those bytes given back (:class:`Replay`). An opaque CONNECT is
resolved and checked by :meth:`proxy.engine.Engine.check_tunnel` (403 if refused), the checked
address is dialled (502 if it does not answer), ``200`` is answered, the ClientHello is read
and checked (:func:`proxy.opaque.hello_refusal`: the connection is closed if refused), and
from then on a thread of the tunnel's own moves the bytes both ways in the kernel
(:func:`proxy.pump.pump`: splice(2), half-closes passed on). One audit line per tunnel when it
ends (:meth:`proxy.audit.Audit.opaque`), with the bytes each way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
from typing import Any, Protocol

from proxy.clienthello import Hello, read_hello
from proxy.engine import Engine
from proxy.guard import internal_error
from proxy.opaque import (
    HEAD_LIMIT,
    OK,
    could_be_connect,
    decide_opaque,
    hello_refusal,
    parse_connect,
    refusal_bytes,
)
from proxy.policy import Decision, deny
from proxy.pump import Way, pump
from proxy.reasons import Reason
from proxy.runs import RunPolicy
from proxy.tunnels import Tunnel

CHUNK = 256 * 1024
HTTP_REQUEST = re.compile(rb"[A-Z]{3,12} \S+ HTTP/1\.[01]\r?\n")  # the request line of one
DIAL_TIMEOUT_S = 15.0
WRITE_WAIT_TURNS = 100


class OpaqueAudit(Protocol):
    def opaque(
        self,
        run_id: str,
        decision: Decision,
        *,
        host: str,
        port: int,
        status: int,
        address: str | None,
        bytes_up: int,
        bytes_down: int,
        duration_ms: float,
        error: str = "",
    ) -> None: ...


class Replay:
    """A reader that first gives back the bytes already read from ``reader``, then reads on."""

    def __init__(self, first: bytes, reader: Any) -> None:
        self._first, self._reader = first, reader

    async def read(self, n: int = -1) -> bytes:
        if self._first:
            cut = len(self._first) if n < 0 else n
            data, self._first = self._first[:cut], self._first[cut:]
            return data
        return bytes(await self._reader.read(n))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


class OpaqueTunnels:
    def __init__(self, engine: Engine, audit: OpaqueAudit, *, timeout: float) -> None:
        self.engine, self.audit, self.timeout = engine, audit, timeout

    async def take(self, run_id: str, reader: Any, writer: asyncio.StreamWriter) -> Any | None:
        """The reader to hand to mitmproxy, or None when this stream was served here (an opaque
        tunnel, or a client that sent nothing)."""
        run = self.engine.registered(run_id)  # (opaque patterns are set at registration only)
        if run is None or not run.allow_opaque:
            return reader
        try:
            head = bytes(await reader.read(HEAD_LIMIT))  # (FirstBytes: within the idle timeout)
            while head and could_be_connect(head):
                more = await asyncio.wait_for(reader.read(HEAD_LIMIT - len(head)), self.timeout)
                if not more:
                    break
                head += more
        except (TimeoutError, ConnectionError):
            return None  # a CONNECT that never came whole: nothing to refuse, nothing to audit
        if not head:
            return None
        target = parse_connect(head)
        view = self.engine.view(run_id) if target is not None else None
        if target is None or view is None:
            return Replay(head, reader)
        host, port, end = target
        cut_off = run_id in view.cut_off
        decision = decide_opaque(view.run, host, port, cut_off=cut_off)
        if decision is None:
            return Replay(head, reader)
        tunnel = _Tunnel(self, view.run, Tunnel(host, port), reader, writer)
        try:
            await tunnel.serve(decision, head[end:])
        except ConnectionError:
            if not tunnel.audited:  # the client went away before the tunnel was up
                tunnel.refuse(deny(Reason.NOT_TLS, "the client closed the tunnel"), 0)
        except Exception as exc:  # fail closed: the connection is closed, the line says why
            if not tunnel.audited:
                tunnel.refuse(internal_error("opaque tunnel", exc), 0)
        return None


class _Tunnel:
    """One opaque tunnel: check, dial, answer, check the hello, splice, audit."""

    def __init__(
        self,
        owner: OpaqueTunnels,
        run: RunPolicy,
        tunnel: Tunnel,
        reader: Any,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.owner, self.run, self.tunnel = owner, run, tunnel
        self.reader, self.writer = reader, writer
        self.start = time.monotonic()
        self.address: str | None = None
        self.up = self.down = 0
        self.audited = False

    def _audit(self, decision: Decision, status: int, error: str = "") -> None:
        self.owner.audit.opaque(
            self.run.run_id,
            decision,
            host=self.tunnel.host,
            port=self.tunnel.port,
            status=status,
            address=self.address,
            bytes_up=self.up,
            bytes_down=self.down,
            duration_ms=(time.monotonic() - self.start) * 1000,
            error=error,
        )
        self.audited = True

    def refuse(self, decision: Decision, status: int) -> None:
        if status:
            self.writer.write(refusal_bytes(decision, status))
        self._audit(decision, status, decision.detail)

    async def serve(self, allowed: Decision, rest: bytes) -> None:
        if not allowed.allowed:
            return self.refuse(allowed, 403)
        host, port, engine = self.tunnel.host, self.tunnel.port, self.owner.engine
        if not await engine.check_tunnel(self.run, self.tunnel, host, port):
            why = self.tunnel.refused or deny(Reason.ADDRESS_REFUSED, "address refused")
            return self.refuse(why, 403)
        self.address = self.tunnel.checked[(host, port)]
        upstream = await self._dial(self.address, port)
        if upstream is None:
            return None
        with upstream:
            self.writer.write(OK)
            hello_bytes, hello = await self._hello(rest)
            refused = hello_refusal(self.tunnel, hello)
            if refused is not None:  # a plain HTTP client can read why; a TLS one can't
                return self.refuse(refused, 403 if HTTP_REQUEST.match(hello_bytes) else 0)
            ended = "closed"
            try:
                await self._send(upstream, hello_bytes)
                ended = await self._splice(upstream)
            finally:  # (also when the service stops mid-tunnel: the line says what went so far)
                self._audit(allowed, 200, "" if ended == "closed" else ended)
        return None

    async def _dial(self, address: str, port: int) -> socket.socket | None:
        """A non-blocking socket connected to the checked address; None (refused) if it
        does not answer."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)), DIAL_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            sock.close()
            detail = f"{self.tunnel.host}:{port} ({address}) did not answer ({type(exc).__name__})"
            self.refuse(deny(Reason.DIAL_FAILED, detail), 502)
            return None
        except BaseException:
            sock.close()
            raise
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    async def _send(self, upstream: socket.socket, data: bytes) -> None:
        if data:
            await asyncio.get_running_loop().sock_sendall(upstream, data)
            self.up += len(data)

    async def _hello(self, buf: bytes) -> tuple[bytes, Hello | None]:
        while True:
            hello = read_hello(buf)
            if hello.complete or hello.not_tls:
                return buf, hello
            try:
                more = await asyncio.wait_for(self.reader.read(CHUNK), self.owner.timeout)
            except (TimeoutError, ConnectionError):
                return buf, None
            if not more:
                return buf, None
            buf += more

    async def _take_buffered(self, upstream: socket.socket) -> bool:
        """Stop the event loop reading from the client and send on what it had read already;
        False when that included the client's EOF."""
        transport: Any = self.writer.transport  # (a socket transport: it reads too)
        while True:
            transport.pause_reading()
            while True:
                try:  # (a read that would wait is cancelled at once: nothing is buffered)
                    data = await asyncio.wait_for(self.reader.read(CHUNK), 0)
                except TimeoutError:
                    break
                except ConnectionError:
                    return False
                if not data:
                    return False
                await self._send(upstream, data)
            if not transport.is_reading():
                return True

    async def _splice(self, upstream: socket.socket) -> str:
        """The rest of the tunnel, in a thread of its own (:func:`proxy.pump.pump`)."""
        open_ = await self._take_buffered(upstream)
        transport = self.writer.transport
        for _ in range(WRITE_WAIT_TURNS):  # our "200" is still queued: let the loop send it
            if not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0)
        else:
            return "client not reading"
        # The thread has sockets of its own (dups): nothing it uses is closed under it.
        client = socket.socket(fileno=os.dup(self.writer.get_extra_info("socket").fileno()))
        server = socket.socket(fileno=os.dup(upstream.fileno()))
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
        up = Way(client, server, eof=not open_)
        down = Way(server, client)
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[str] = loop.create_future()

        def run() -> None:
            try:
                why = pump([up, down], stop_r, linger=self.owner.timeout)
            except Exception as exc:  # never leave the tunnel hanging
                why = f"pump failed: {type(exc).__name__}"
            finally:
                client.close()
                server.close()
                os.close(stop_r)
            with contextlib.suppress(RuntimeError):  # the loop is gone: the service stopped
                loop.call_soon_threadsafe(_settle, ended, why)

        threading.Thread(target=run, name="coatcheck-opaque", daemon=True).start()
        try:
            return await asyncio.shield(ended)
        finally:
            self.up += up.count
            self.down += down.count
            with contextlib.suppress(OSError):  # (EPIPE once the thread is done)
                os.write(stop_w, b"x")
            os.close(stop_w)


def _settle(future: asyncio.Future[str], why: str) -> None:
    if not future.done():
        future.set_result(why)
