"""A local TLS upstream signed by a trustme CA: records what it received, and can misbehave.

Paths:
  /echo...            JSON of the request it got: method, path, headers, body (echoes secrets!)
  /sse?value=V&n=N    a text/event-stream of N events, V split across chunk boundaries
  /gzip-echo          the echo, gzip-encoded
  /redirect?to=URL    302 to URL
  /big?size=N         N bytes of 'x'
  /held-sse?hold=ID&value=V
                      one event, then nothing more until the test releases hold ID (see
                      ``Upstream.hold``); then a second event and the end of the stream
  /hold?hold=ID       answers 200 "released" once the test releases hold ID

The upstream is shared by the whole session, so a test never looks at "the last request": it
puts a tag of its own (the ``tag`` fixture) in each request, usually as ``?t=TAG``, and finds
its requests with ``received_with(server, tag)``. Other tests' traffic can't match.
"""

from __future__ import annotations

import gzip
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import trustme


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def raw(self) -> bytes:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path}\n{head}\n\n".encode() + self.body

    def holds(self, text: str) -> bool:
        """Whether the request line, a header or the body holds ``text`` (without copying a
        large body, as ``raw()`` would)."""
        if text in self.path or any(text in f"{k}: {v}" for k, v in self.headers):
            return True
        return text.encode() in self.body


class Recorder(Protocol):
    """A test server that records every request it gets (this upstream, the attack suite's)."""

    @property
    def received(self) -> list[Received]: ...


def new_tag() -> str:
    """A request tag no other test uses (128 random bits)."""
    return "tag-" + secrets.token_hex(16)


def received_with(server: Recorder, tag: str) -> list[Received]:
    """The requests ``server`` recorded whose bytes (request line, headers or body) hold
    ``tag``, in arrival order."""
    return [r for r in list(server.received) if r.holds(tag)]


def only_received_with(server: Recorder, tag: str) -> Received:
    """The one request ``server`` recorded with ``tag``; fails when there are none or more."""
    got = received_with(server, tag)
    assert len(got) == 1, f"{len(got)} requests with {tag}: {[r.path for r in got]}"
    return got[0]


def tagged(url: str, tag: str) -> str:
    """``url`` with ``t=TAG`` added to its query."""
    return f"{url}{'&' if '?' in url else '?'}t={tag}"


HOLD_S = 60.0  # how long the upstream keeps a hold before it gives up and cuts the response


@dataclass
class Hold:
    """A point where the upstream stops until the test says go: an ordering event, no clock."""

    id: str = field(default_factory=lambda: secrets.token_hex(8))
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    gave_up: bool = False

    def release(self) -> None:
        self.released.set()

    def wait_released(self) -> bool:
        self.reached.set()
        if not self.released.wait(HOLD_S):
            self.gave_up = True
        return not self.gave_up


@dataclass
class Upstream:
    ca: trustme.CA
    names: tuple[str, ...]
    port: int = 0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    holds: dict[str, Hold] = field(default_factory=dict)

    def hold(self) -> Hold:
        """A new hold, for ``/held-sse?hold=ID`` or ``/hold?hold=ID``."""
        h = Hold()
        self.holds[h.id] = h
        return h

    def all_bytes(self) -> bytes:
        return b"\n".join(r.raw() for r in self.received)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _record(self) -> Received:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec = Received(self.command, self.path, list(self.headers.items()), body)
            up.received.append(rec)
            return rec

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self) -> None:
            rec = self._record()
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            echo = json.dumps(
                {
                    "method": rec.method,
                    "path": rec.path,
                    "headers": dict(rec.headers),
                    "body": rec.body.decode("utf-8", "replace"),
                }
            ).encode()
            if url.path.startswith("/echo-header"):
                auth = rec.header("Authorization") or ""
                self._send(200, b"ok", {"X-Echo": auth, "Set-Cookie": f"t={auth}"})
            elif url.path.startswith("/echo"):
                self._send(200, echo, {"Content-Type": "application/json"})
            elif url.path == "/gzip-echo":
                self._send(
                    200,
                    gzip.compress(echo),
                    {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                )
            elif url.path == "/redirect":
                self._send(302, b"", {"Location": q.get("to", "/")})
            elif url.path == "/big":
                self._send(200, b"x" * int(q.get("size", "1024")))
            elif url.path == "/hold":
                held = up.holds[q["hold"]].wait_released()
                self._send(200 if held else 504, b"released" if held else b"gave up")
            elif url.path in ("/sse", "/held-sse"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                value = q.get("value", "")
                held = url.path == "/held-sse"
                n = 2 if held else int(q.get("n", "3"))
                for i in range(n):
                    if held and i == 1 and not up.holds[q["hold"]].wait_released():
                        break  # the stream ends short: the test sees that it was held too long
                    event = f'data: {{"i": {i}, "echo": "{value}"}}\n\n'.encode()
                    cut = 6 + 8 + len(str(i)) + len(value) // 2
                    self.wfile.write(event[:cut])
                    self.wfile.flush()
                    time.sleep(0.01)  # the upstream's pacing: two writes, so V may be split
                    self.wfile.write(event[cut:])
                    self.wfile.flush()
                self.close_connection = True
            else:
                self._send(200, b"hello from upstream\n", {"Content-Type": "text/plain"})

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        def do_HEAD(self) -> None:
            self._record()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def start_upstream(
    ca: trustme.CA, names: tuple[str, ...] = ("api.coatcheck.test",), host: str = "127.0.0.1"
) -> Upstream:
    up = Upstream(ca=ca, names=names)
    server = ThreadingHTTPServer((host, 0), _handler(up))
    server.daemon_threads = True
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    up.server = server
    up.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return up
