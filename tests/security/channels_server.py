"""A scripted hostile upstream for the channel enumeration (test_channels_attacks.py), and the
byte-level clients that read everything the proxy sends back.

The server speaks HTTP/1.1 or HTTP/2 (whichever the proxy's ALPN picks) and answers each path
by reflecting the credential it received (``Authorization: Bearer VALUE``) in exactly one place
of its answer: the status line, a header, a body (buffered, streamed, read until close),
trailers, an informational response, a switch of protocols, a transfer coding, WebSocket
frames, a malformed response that mitmproxy quotes in its error page, an HTTP/2 GOAWAY. It
records every request as tests.support.upstream does.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import socket
import ssl
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trustme

from tests.security.hostile import frame
from tests.support.upstream import Received

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _chunks(parts: list[bytes], trailer: bytes = b"") -> bytes:
    return (
        b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n" + trailer + b"\r\n"
    )


def _h1(v: bytes, rec: Received) -> bytes:
    """The HTTP/1.1 answer to ``rec`` reflecting ``v`` where its path says."""
    path = rec.path.split("?", 1)[0]
    ok, close = b"HTTP/1.1 200 OK\r\n", b"Connection: close\r\n"
    if path == "/status-reason":
        return b"HTTP/1.1 200 Echo " + v + b"\r\nContent-Length: 2\r\n" + close + b"\r\nok"
    if path == "/header-value":
        return ok + b"X-Echo: " + v + b"\r\nContent-Length: 2\r\n" + close + b"\r\nok"
    if path == "/header-name":
        return ok + b"X-" + v + b": 1\r\nContent-Length: 2\r\n" + close + b"\r\nok"
    if path == "/body-buffered":
        body = b"token=" + v
        return ok + b"Content-Length: %d\r\n" % len(body) + close + b"\r\n" + body
    if path == "/body-streamed":
        te = b"Transfer-Encoding: chunked\r\n"
        return ok + te + close + b"\r\n" + _chunks([bytes([c]) for c in b"token=" + v])
    if path == "/body-until-close":
        return ok + close + b"\r\ntoken=" + v
    if path == "/trailers":
        head = ok + b"Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n" + close + b"\r\n"
        return head + _chunks([b"ok"], b"X-Trailer: " + v + b"\r\n")
    if path == "/informational":
        early = b"HTTP/1.1 103 Early Hints\r\nLink: </" + v + b">; rel=preload\r\n\r\n"
        return early + ok + b"Content-Length: 2\r\n" + close + b"\r\nok"
    if path in ("/upgrade-raw", "/upgrade-websocket-unasked"):
        proto = b"foo" if path == "/upgrade-raw" else b"websocket"
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + proto
        return head + b"\r\nConnection: Upgrade\r\n\r\nraw " + v
    if path in ("/te-gzip-chunked", "/te-gzip"):
        body = gzip.compress(b"token=" + v)
        if path == "/te-gzip":
            return ok + b"Transfer-Encoding: gzip\r\n" + close + b"\r\n" + body
        te = b"Transfer-Encoding: gzip, chunked\r\n"
        return ok + te + close + b"\r\n" + _chunks([body[:9], body[9:]])
    if path == "/error-page":
        return b"HTTP/1.1 2x0 " + v + b"\r\nContent-Length: 2\r\n\r\nok"
    if path == "/ws-frames":
        key = (rec.header("Sec-WebSocket-Key") or "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())  # noqa: S324 - RFC 6455
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        head += b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        close_frame = frame(0x8, (1000).to_bytes(2, "big") + v)
        return head + frame(0x1, b"token=" + v) + frame(0x9, v) + close_frame
    return _partial(v, rec) or ok + b"Content-Length: 2\r\n" + close + b"\r\nok"


def _partial(v: bytes, rec: Received) -> bytes:
    """Echoes for the partial-value attacks: ``/range-echo`` honours ``Range: bytes=A-B``,
    ``/always-206`` answers the first bytes whatever was asked, ``/echo-auth`` sends back the
    ``Authorization`` header it got, whole."""
    path, close = rec.path.split("?", 1)[0], b"Connection: close\r\n"
    asked = (rec.header("Range") or "").removeprefix("bytes=").split("-")
    if path == "/range-echo" and len(asked) == 2 and asked[0].isdigit() and asked[1].isdigit():
        start, end = int(asked[0]), min(int(asked[1]), len(v) - 1)
        part, total = v[start : end + 1], b"bytes %d-%d/%d" % (start, end, len(v))
        head = b"HTTP/1.1 206 Partial Content\r\nContent-Range: " + total + b"\r\n"
    elif path in ("/range-echo", "/echo-auth", "/always-206"):
        part = (rec.header("Authorization") or "").encode() if path == "/echo-auth" else v
        head = b"HTTP/1.1 200 OK\r\n"
        if path == "/always-206":
            part, head = v[:4], b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/*\r\n"
    else:
        return b""
    return head + b"Content-Length: %d\r\n" % len(part) + close + b"\r\n" + part


def _body(f: Any, rec: Received) -> bytes:
    """A request body, by its Content-Length or chunked; trailer lines, if any, are recorded
    after it (so a test can tell they arrived)."""
    if (rec.header("Transfer-Encoding") or "").lower() != "chunked":
        return f.read(int(rec.header("Content-Length") or 0))
    body = b""
    while size := int(f.readline().split(b";")[0], 16):
        body += f.read(size)
        f.readline()
    while (line := f.readline()) not in (b"\r\n", b"\n", b""):
        body += b"\n[trailer] " + line.rstrip()
    return body


def credential(headers: list[tuple[str, str]]) -> bytes:
    """The Bearer token of ``headers``, or the value in ``user:VALUE`` of a Basic one."""
    auth = next((v for k, v in headers if k.lower() == "authorization"), "")
    kind, _, token = auth.partition(" ")
    if kind.lower() == "basic":
        return base64.b64decode(token + "==").partition(b":")[2]
    return token.encode() if kind.lower() == "bearer" else b""


@dataclass
class ChannelServer:
    ca: trustme.CA
    names: tuple[str, ...]
    port: int = 0
    received: list[Received] = field(default_factory=list)
    after_upgrade: list[bytes] = field(default_factory=list)  # what came through a raw pipe
    sock: socket.socket | None = None

    def start(self) -> ChannelServer:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*self.names).configure_cert(self.ctx)
        self.ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        failed = (OSError, ValueError, h2.exceptions.ProtocolError)
        with contextlib.suppress(*failed), self.ctx.wrap_socket(conn, server_side=True) as tls:
            if tls.selected_alpn_protocol() == "h2":
                self._h2(tls)
            else:
                self._h1(tls)
        conn.close()

    def _h1(self, tls: ssl.SSLSocket) -> None:
        f = tls.makefile("rb")
        method, path, _ = f.readline().decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (line := f.readline().decode("latin-1").rstrip("\r\n")) != "":
            k, _, val = line.partition(":")
            headers.append((k.strip(), val.strip()))
        rec = Received(method, path, headers, _body(f, Received(method, path, headers, b"")))
        self.received.append(rec)
        tls.sendall(_h1(credential(headers), rec))
        if path.startswith(("/upgrade", "/ws-frames")):  # whatever the client sends on
            with contextlib.suppress(OSError):
                self.after_upgrade.append(f.read1(65536))
        tls.close()

    def _h2(self, tls: ssl.SSLSocket) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config)
        conn.initiate_connection()
        tls.sendall(conn.data_to_send())
        heads: dict[int, list[tuple[str, str]]] = {}
        while data := tls.recv(65536):
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    heads[ev.stream_id] = [(str(k), str(v)) for k, v in ev.headers]
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in heads:
                    self._h2_answer(conn, ev.stream_id, heads.pop(ev.stream_id))
            tls.sendall(conn.data_to_send())

    def _h2_answer(self, conn: h2.connection.H2Connection, sid: int, head: list) -> None:  # type: ignore[type-arg]
        pseudo = dict(h for h in head if h[0].startswith(":"))
        fields = [("Host", pseudo[":authority"]), *(h for h in head if h[0][0] != ":")]
        rec = Received(pseudo[":method"], pseudo[":path"], fields, b"")
        self.received.append(rec)
        v, path = credential(head).decode(), pseudo[":path"].split("?", 1)[0]
        if path == "/h2-informational":
            conn.send_headers(sid, [(":status", "103"), ("link", f"</{v}>; rel=preload")])
        if path == "/h2-goaway":
            conn.close_connection(error_code=2, additional_data=v.encode())
            return
        extra = [("x-echo", v)] if path == "/h2-header" else []
        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain"), *extra])
        body = f"token={v}".encode() if path == "/h2-body" else b"ok"
        trailers = path == "/h2-trailers"
        conn.send_data(sid, body, end_stream=not trailers)
        if trailers:
            conn.send_headers(sid, [("x-trailer", v), ("grpc-message", v)], end_stream=True)


# -- what a client gets ---------------------------------------------------------------------


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Every byte the peer sends until it closes (or goes quiet for ``timeout``)."""
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(OSError, ssl.SSLError):
        while data := sock.recv(65536):
            out += data
    return out


def decoded_views(raw: bytes) -> list[bytes]:
    """``raw`` and what a client could derive from it: the body with chunking removed, and any
    gzip stream inside either, decompressed as far as it goes."""
    views = [raw]
    head, sep, body = raw.partition(b"\r\n\r\n")
    if sep:
        views.append(_dechunk(body))
    for view in list(views):
        start = view.find(b"\x1f\x8b")
        if start >= 0:
            with contextlib.suppress(zlib.error):
                views.append(zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(view[start:]))
    return views


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, sep, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            return out + body
        if not sep or size == 0:
            return out + rest
        out, body = out + rest[:size], rest[size + 2 :]
    return out


Decoder = Callable[[bytes], list[bytes]]
