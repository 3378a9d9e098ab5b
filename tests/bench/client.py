"""The benchmark's one client: HTTP/1.1 over TLS on a keep-alive connection, straight to the
upstream, through a CONNECT tunnel to mitmdump, or through a run's Unix socket (as the in-sandbox
relay would), with the same code for every mode; plus a streamed download, a streamed upload and
the wait for a first server-sent event."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.common import MIB, NAME

Connect = Callable[[int], socket.socket]  # given the upstream's port
CHUNK = MIB


def _tcp(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def upstream() -> Connect:
    """Straight to the upstream."""
    return _tcp


def tcp(port: int) -> Connect:
    """To a proxy listening on ``port``."""
    return lambda _upstream_port: _tcp(port)


def unix(path: str) -> Connect:
    """To a run's Unix socket, as the in-sandbox relay does."""

    def connect(_upstream_port: int) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(path)
        return s

    return connect


class Client:
    """One keep-alive HTTP/1.1-over-TLS connection, optionally through a CONNECT tunnel."""

    def __init__(self, raw: socket.socket, *, port: int, cafile: Path, tunnel: bool) -> None:
        raw.settimeout(30)
        if tunnel:
            raw.sendall(f"CONNECT {NAME}:{port} HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = raw.recv(4096)
                if not chunk or len(buf) > 65536:
                    raise ConnectionError(f"CONNECT: no answer ({buf[:200]!r})")
                buf += chunk
            if buf.split(b" ", 2)[1] != b"200":
                raise ConnectionError(f"CONNECT refused: {buf[:300]!r}")
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.set_alpn_protocols(["http/1.1"])
        self.sock = ctx.wrap_socket(raw, server_hostname=NAME)
        self.rfile = self.sock.makefile("rb", buffering=CHUNK)
        self.host = f"{NAME}:{port}"

    def request_bytes(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": self.host, **headers}.items())
        return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode()

    def head(self) -> tuple[int, dict[bytes, bytes]]:
        """The status and headers of the next response."""
        rf = self.rfile
        line = rf.readline(65537)
        if not line:
            raise ConnectionError("connection closed")
        status = int(line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for _ in range(200):
            h = rf.readline(65537)
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise ConnectionError("connection closed in headers")
            k, _, v = h.partition(b":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def body(self, headers: dict[bytes, bytes]) -> bytes:
        rf = self.rfile
        if b"content-length" in headers:
            return rf.read(int(headers[b"content-length"]))
        if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
            raise ConnectionError("response without a length on a keep-alive connection")
        parts = []
        for _ in range(100_000):
            size = int(rf.readline(1024).split(b";")[0], 16)
            if size == 0:
                for _ in range(200):  # trailers
                    if rf.readline(65537) in (b"\r\n", b"\n", b""):
                        break
                break
            parts.append(rf.read(size))
            rf.read(2)
        return b"".join(parts)

    def roundtrip(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.sock.sendall(request)
        status, headers = self.head()
        return status, headers, self.body(headers)

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


@dataclass
class Target:
    """Where a mode's client connects, and what it must trust."""

    mode: str
    pid: int | None  # the proxy's (root) process, for its CPU time
    connect: Connect
    cafile: Path
    tunnel: bool
    auth: str  # the Authorization value the client sends
    expect_upstream_auth: str  # what the upstream must receive

    def client(self, port: int) -> Client:
        return Client(self.connect(port), port=port, cafile=self.cafile, tunnel=self.tunnel)


def download(target: Target, port: int, size: int, *, deadline_s: float) -> float:
    """Seconds to fetch ``size`` bytes of /bytes on a fresh connection (after the handshakes)."""
    c = target.client(port)
    try:
        t0 = time.perf_counter()
        c.sock.sendall(c.request_bytes("GET", f"/bytes?n={size}", {"Authorization": target.auth}))
        status, headers = c.head()
        if status != 200:
            raise RuntimeError(f"{target.mode}: download status {status}")
        buf = memoryview(bytearray(CHUNK))
        stop_at = t0 + deadline_s
        if b"content-length" in headers:
            got = _drain(c.rfile, int(headers[b"content-length"]), buf, stop_at)
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":  # a proxy re-framed it
            got = 0
            for _ in range(size + 1):  # a chunk holds a byte at least; and the deadline
                if time.perf_counter() > stop_at:
                    break
                n = int(c.rfile.readline(1024).split(b";")[0], 16)
                if n == 0:
                    c.rfile.readline(1024)  # no trailers from the bench's upstream
                    break
                got += _drain(c.rfile, n, buf, stop_at)
                c.rfile.readline(16)
        else:
            raise RuntimeError(f"{target.mode}: a download with neither length nor chunks")
        took = time.perf_counter() - t0
        if got != size:
            raise RuntimeError(f"{target.mode}: downloaded {got} of {size} bytes in {took:.0f} s")
        return took
    finally:
        c.close()


def _drain(rfile: Any, n: int, buf: memoryview, stop_at: float) -> int:
    """Read and drop ``n`` bytes of a buffered reader (fewer if it ends or time runs out)."""
    got = 0
    for _ in range(n // 256 + 1000):  # and the deadline
        if got >= n or time.perf_counter() > stop_at:
            break
        k = rfile.readinto1(buf[: min(len(buf), n - got)])
        if not k:
            break
        got += k
    return got


def upload(target: Target, port: int, size: int, *, deadline_s: float) -> float:
    """Seconds to POST ``size`` bytes to /upload on a fresh connection until its answer."""
    block = memoryview(bytes(range(256)) * (CHUNK // 256))
    c = target.client(port)
    try:
        t0 = time.perf_counter()
        c.sock.sendall(
            c.request_bytes(
                "POST",
                "/upload",
                {
                    "Authorization": target.auth,
                    "Content-Length": str(size),
                    "Content-Type": "application/octet-stream",
                },
            )
        )
        sent = 0
        while sent < size and time.perf_counter() - t0 <= deadline_s:
            n = min(CHUNK, size - sent)
            c.sock.sendall(block[:n])
            sent += n
        if sent < size:
            raise RuntimeError(f"{target.mode}: uploaded {sent} of {size} bytes in {deadline_s} s")
        status, headers = c.head()
        body = c.body(headers)
        took = time.perf_counter() - t0
        if status != 200 or int(body or b"0") != size:
            raise RuntimeError(f"{target.mode}: upload answered {status} {body[:100]!r}")
        return took
    finally:
        c.close()


def first_event(target: Target, port: int, hold_ms: int) -> tuple[float, float]:
    """(seconds from connecting, seconds from sending the request) until the first
    server-sent event of /sse arrives; the upstream holds the stream open ``hold_ms`` after it,
    so a proxy that buffers the stream shows up as a first event later than that."""
    t0 = time.perf_counter()
    c = target.client(port)
    try:
        t1 = time.perf_counter()
        c.sock.sendall(
            c.request_bytes(
                "GET",
                f"/sse?hold_ms={hold_ms}",
                {"Authorization": target.auth, "Accept": "text/event-stream"},
            )
        )
        status, _ = c.head()
        if status != 200:
            raise RuntimeError(f"{target.mode}: SSE status {status}")
        seen = b""
        for _ in range(1000):
            line = c.rfile.readline(65537)
            if not line:
                raise ConnectionError(f"{target.mode}: SSE stream ended before an event")
            seen += line
            if b"data:" in seen:
                break
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1
    finally:
        c.close()
