"""A lean keep-alive TLS upstream for the benchmark, run as its own process (so it never competes
with the client or the proxy for a GIL).

    python tests/bench/upstream_fast.py CERT_PEM KEY_PEM
        prints the port, serves until its stdin closes

One thread per connection, blocking TLS I/O, a hand-written HTTP/1.1 parser. Paths:
  /echo...   JSON of the request (method, path, headers): it echoes secrets, like tests' upstream;
             header X-Auth-Sha256 = sha256 of the Authorization header received
  /stats     {"connections": N, "requests": M} since start
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import sys
import threading
from collections.abc import Callable

STATS = {"connections": 0, "requests": 0}
LOCK = threading.Lock()
MAX_HEADER_LINES = 100


def _serve(conn: socket.socket, ctx: ssl.SSLContext) -> None:
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    with LOCK:
        STATS["connections"] += 1
    rfile = tls.makefile("rb")
    try:
        while True:
            line = rfile.readline(65537)
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            headers: list[tuple[str, str]] = []
            for _ in range(MAX_HEADER_LINES):
                h = rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers.append((k.strip(), v.strip()))
            lower = {k.lower(): v for k, v in headers}
            length = int(lower.get("content-length", "0") or 0)
            if length:
                rfile.read(length)
            with LOCK:
                STATS["requests"] += 1
            if path == "/stats":
                body = json.dumps(STATS).encode()
                extra = b""
            else:
                body = json.dumps(
                    {"method": method, "path": path, "headers": dict(headers)}
                ).encode()
                digest = hashlib.sha256(lower.get("authorization", "").encode()).hexdigest()
                extra = f"X-Auth-Sha256: {digest}\r\n".encode()
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + extra
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            if lower.get("connection", "").lower() == "close":
                return
    except (OSError, ValueError, ssl.SSLError):
        return
    finally:
        rfile.close()
        tls.close()


def main(cert: str, key: str) -> None:
    serve_tls(cert, key, _serve)


def serve_tls(cert: str, key: str, serve: Callable[[socket.socket, ssl.SSLContext], None]) -> None:
    """Serve each TLS connection on 127.0.0.1 with ``serve`` in a thread of its own; print the
    port; exit when stdin closes (the parent closed it, or died). Shared by the upstreams."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.read()  # the parent closes stdin (or dies): we go too
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
