"""Every way an upstream's bytes reach the sandbox, and what keeps a real value out of each. Pure.

The scrubber (:mod:`proxy.responses`) sees a response's status line, its header names and
values, and its body, buffered or streamed, once decoded. The other channels:

- **Trailers.** HTTP/2 trailers are scrubbed like headers, after the body
  (:func:`after_body`: gRPC needs its ``grpc-status``); trailers never go to an HTTP/1
  client, which can't carry them. HTTP/1 chunked trailers from an upstream (or a client) are
  dropped where mitmproxy reads them (:mod:`proxy.hookless`).
- **A switch of protocols.** After a ``101`` mitmproxy relays a WebSocket frame by frame
  through the addon, but any other protocol as raw TCP that no hook sees, either way. So a
  request asking for any upgrade but ``websocket`` is refused before it leaves (403), and a
  ``101`` that does not start a WebSocket is answered with a 502 instead (:func:`request_refusal`,
  :func:`after_body`); both ``upgrade_refused``.
- **Transfer codings.** mitmproxy removes only the chunking: under ``gzip, chunked`` (or
  ``gzip``, read until close) the scrubber would see compressed bytes. Any Transfer-Encoding
  other than exactly ``chunked`` is refused: 400 for a request, 502 for a response
  (``transfer_encoding``; :func:`response_refusal`).
- **WebSocket.** Messages are scrubbed (server to client) and leak-scanned (client to server) in
  the addon; ping and pong payloads and close reasons, which mitmproxy relays without a hook, are
  scrubbed on their way to the client (:func:`scrub_control`, :mod:`proxy.hookless`).
- **Informational responses.** mitmproxy swallows an HTTP/2 upstream's ``1xx``; an HTTP/1 one
  it takes for the response, whose head is scrubbed as any other.
- **Error pages.** mitmproxy's 502 page quotes a malformed response: the addon closes the
  connection instead when the quote holds a value (its ``error`` hook).
- **The CONNECT response** is the proxy's own, made before the upstream is dialled.

A ``206 Partial Content`` to a request that carried a value is refused too (``partial_response``;
see :mod:`proxy.fragments`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.responses import scrub_fields
from proxy.scrub import scrub_bytes

Fields = tuple[tuple[bytes, bytes], ...]
Pairs = tuple[tuple[bytes, bytes], ...]
CONTROL_LIMIT = 125  # the payload of a WebSocket ping or pong, at most (RFC 6455)
CLOSE_REASON_LIMIT = 123  # a close frame's reason, after its 2-byte code


def _values(fields: Fields, name: bytes) -> list[bytes]:
    return [v for k, v in fields if k.lower() == name]


def _tokens(values: list[bytes]) -> list[bytes]:
    return [t.strip().lower() for v in values for t in v.split(b",") if t.strip()]


def _transfer_coded(fields: Fields) -> bool:
    """A Transfer-Encoding other than exactly ``chunked`` (once)."""
    values = _values(fields, b"transfer-encoding")
    return bool(values) and _tokens(values) != [b"chunked"]


def request_refusal(fields: Fields) -> tuple[Decision, int] | None:
    """Refuse, before it leaves, a request asking for an upgrade to any protocol but WebSocket,
    or framed with a transfer coding other than ``chunked``; with the status to answer."""
    upgrade = _tokens(_values(fields, b"upgrade"))
    if upgrade and upgrade != [b"websocket"]:
        shown = b", ".join(upgrade).decode("latin-1")[:64]
        detail = f"only WebSocket upgrades pass the proxy, not {shown!r}"
        return deny(Reason.UPGRADE_REFUSED, detail), 403
    if _transfer_coded(fields):
        return deny(Reason.TRANSFER_ENCODING, "send the body with chunked framing only"), 400
    return None


class _Fields(Protocol):
    fields: Fields


class Head(Protocol):
    """A response's head: its status and raw header fields (mitmproxy's Response)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> _Fields: ...


class Ending(Protocol):
    """A response about to go out: its status and trailers (mitmproxy's Response)."""

    @property
    def status_code(self) -> int: ...

    @property
    def trailers(self) -> _Fields | None: ...

    @trailers.setter
    def trailers(self, value: None) -> None: ...


def response_refusal(head: Head, injected: Collection[str]) -> Decision | None:
    """Refuse a response by its head: a transfer coding the scrubber can't see through, or a
    partial response to a request that carried a value (``injected``: the names)."""
    if _transfer_coded(head.headers.fields):
        detail = "the upstream used a transfer coding other than chunked; it can't be scrubbed"
        return deny(Reason.TRANSFER_ENCODING, detail)
    if head.status_code == 206 and injected:
        detail = "a partial response to a request that carried a secret value is not passed on"
        return deny(Reason.PARTIAL_RESPONSE, detail)
    return None


class _Request(Protocol):
    @property
    def is_http2(self) -> bool: ...


class Flow(Protocol):
    """A request and its response, about to go out (mitmproxy's HTTPFlow, in its ``response``
    hook: ``websocket`` is set when a WebSocket follows)."""

    @property
    def request(self) -> _Request: ...

    @property
    def response(self) -> Ending | None: ...

    @property
    def websocket(self) -> object | None: ...


def after_body(flow: Flow, pairs: Pairs) -> Decision | None:
    """What goes out after a response's body, set right: the refusal (502) of a ``101`` that
    does not start a WebSocket (it would become a raw TCP pipe); trailers scrubbed in place for
    an HTTP/2 client, dropped for an HTTP/1 one (it can't carry them)."""
    resp = flow.response
    if resp is None:
        return None
    if resp.status_code == 101 and flow.websocket is None:
        detail = "the upstream switched to a protocol other than WebSocket"
        return deny(Reason.UPGRADE_REFUSED, detail)
    if resp.trailers is not None and not flow.request.is_http2:
        resp.trailers = None
    elif resp.trailers is not None and pairs:
        resp.trailers.fields = scrub_fields(resp.trailers.fields, pairs)
    return None


def scrub_control(payload: bytes, pairs: Pairs, limit: int = CONTROL_LIMIT) -> bytes:
    """A WebSocket control payload (ping, pong, close reason) on its way to the client,
    scrubbed and cut to what the frame can carry (a placeholder may be longer than its value)."""
    return scrub_bytes(payload, pairs)[:limit] if pairs else payload
