"""A streaming TLS upstream for the benchmark, run as its own process (its own GIL):

    python tests/bench/upstream_stream.py CERT_PEM KEY_PEM
        prints the port, serves until its stdin closes

One thread per connection, blocking TLS I/O, keep-alive HTTP/1.1. Paths:
  GET  /bytes?n=N        N bytes (Content-Length), sent in 1 MiB writes
  POST /upload           reads the Content-Length body in 1 MiB reads, answers its byte count
  GET  /sse?hold_ms=H    text/event-stream, chunked: one event at once, a second H ms later
                         (at most 10 s), then the end: a proxy that buffers the stream delivers
                         the first event only after H ms
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root
from tests.bench.upstream_fast import serve_tls  # noqa: E402

MIB = 1 << 20
MAX_BYTES = 4 << 30
BLOCK = memoryview(os.urandom(MIB))


def _respond(tls: ssl.SSLSocket, status: str, body: bytes, ctype: str = "text/plain") -> None:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    tls.sendall(head.encode() + body)


def _bytes(tls: ssl.SSLSocket, n: int) -> None:
    tls.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        + f"Content-Length: {n}\r\n\r\n".encode()
    )
    sent = 0
    while sent < n:
        k = min(MIB, n - sent)
        tls.sendall(BLOCK[:k])
        sent += k


def _upload(tls: ssl.SSLSocket, rfile: object, length: int) -> None:
    buf = memoryview(bytearray(MIB))
    got = 0
    while got < length:
        k = rfile.readinto1(buf[: min(MIB, length - got)])  # type: ignore[attr-defined]
        if not k:
            raise ConnectionError("upload ended early")
        got += k
    _respond(tls, "200 OK", str(got).encode())


def _sse(tls: ssl.SSLSocket, hold_ms: int) -> None:
    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    tls.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"event: ping\ndata: first\n\n")
    )
    time.sleep(min(hold_ms, 10_000) / 1000)  # the stream stays open: that is the point
    tls.sendall(chunk(b"data: second\n\n") + b"0\r\n\r\n")


def _serve(conn: socket.socket, ctx: ssl.SSLContext) -> None:
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    rfile = tls.makefile("rb", buffering=MIB)
    try:
        for _ in range(1_000_000):
            line = rfile.readline(65537)
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            for _ in range(100):
                h = rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            url = urlsplit(target)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            length = int(headers.get("content-length", "0") or 0)
            if method == "POST" and url.path == "/upload":
                _upload(tls, rfile, length)
                continue
            if length:
                rfile.read(length)
            if url.path == "/bytes":
                _bytes(tls, min(int(query.get("n", "0")), MAX_BYTES))
            elif url.path == "/sse":
                _sse(tls, int(query.get("hold_ms", "0")))
            else:
                _respond(tls, "404 Not Found", b"no such path\n")
            if headers.get("connection", "").lower() == "close":
                return
    except (OSError, ValueError, ssl.SSLError, ConnectionError):
        return
    finally:
        rfile.close()
        tls.close()


def main(cert: str, key: str) -> None:
    serve_tls(cert, key, _serve)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
