"""Where mitmproxy passes bytes on without calling any hook, and what the proxy does there.

With :mod:`proxy.addon` and :mod:`proxy.mitm`, the only modules that import mitmproxy; these
are its internals, of the minor release it is pinned to. :func:`install` patches, once:

- **HTTP/1 chunked trailers.** mitmproxy raises on them, which kills the connection midway.
  Its chunked-body reader drops them instead: the message ends normally without its trailer
  fields, so a value an upstream put there never reaches the client (and a placeholder a
  client put there goes nowhere).
- **A switch to raw TCP.** After a ``101`` mitmproxy turns the upstream connection into a pipe
  whose bytes no hook sees. Only a WebSocket handshake does so now; the addon answers any other
  ``101`` with a 502 (:func:`proxy.channels.after_body`), and what the upstream sent after it
  is not read on: the connection is closed.
- **WebSocket control frames.** mitmproxy relays a ping's or pong's payload and a close frame's
  reason from one side straight to the other. On their way to the client they are scrubbed
  with the scrub pairs of the client's run (:func:`proxy.channels.scrub_control`); if that
  fails, they go out empty.

The rest of :mod:`proxy.channels`'s list is handled in the addon's hooks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mitmproxy import connection
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import websocket
from mitmproxy.proxy.layers.http import _http1

from proxy.channels import CLOSE_REASON_LIMIT, scrub_control
from proxy.engine import Engine
from proxy.identity import run_id_of

_engine: Engine | None = None
_SEND2 = websocket.WebsocketConnection.send2
_SHOULD_MAKE_PIPE = _http1.should_make_pipe


class TrailerlessChunkedReader(_http1.ChunkedReader):
    """h11's chunked-body reader, but the end of a message never carries trailer fields."""

    def __call__(self, buf: Any) -> Any:
        event = super().__call__(buf)
        if isinstance(event, _http1.h11.EndOfMessage) and event.headers:
            return _http1.h11.EndOfMessage()
        return event


def _should_make_pipe(request: Any, response: Any) -> bool:
    """mitmproxy's rule, but a ``101`` pipes only when it starts a WebSocket (its own test)."""
    if response.status_code == 101 and not (
        response.headers.get("upgrade", "").lower() == "websocket"
        and request.headers.get("sec-websocket-version", "") == "13"
    ):
        return False
    return _SHOULD_MAKE_PIPE(request, response)


def _to_client(ws: websocket.WebsocketConnection, event: Any) -> Any:
    """``event`` as the client may see it: a control payload scrubbed for its run."""
    payload, reason = getattr(event, "payload", None), getattr(event, "reason", None)
    if not payload and not reason:
        return event
    try:
        view = _engine.view(run_id_of(ws.conn.peername)) if _engine else None
        pairs = view.scrub_pairs if view is not None else ()
        if payload:
            return dataclasses.replace(event, payload=scrub_control(bytes(payload), pairs))
        scrubbed = scrub_control(str(reason).encode(), pairs, CLOSE_REASON_LIMIT)
        return dataclasses.replace(event, reason=scrubbed.decode("utf-8", "ignore"))
    except Exception:
        return dataclasses.replace(event, **({"payload": b""} if payload else {"reason": ""}))


def _send2(self: websocket.WebsocketConnection, event: Any) -> commands.SendData:
    if isinstance(self.conn, connection.Client):
        event = _to_client(self, event)
    return _SEND2(self, event)


def install(engine: Engine) -> None:
    """Patch mitmproxy's HTTP/1 body reader and pipes, and its WebSocket relay (idempotent)."""
    global _engine
    _engine = engine
    _http1.ChunkedReader = TrailerlessChunkedReader  # type: ignore[misc]
    _http1.should_make_pipe = _should_make_pipe
    websocket.WebsocketConnection.send2 = _send2  # type: ignore[method-assign]
