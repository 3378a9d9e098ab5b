"""The request body of a test server's ``BaseHTTPRequestHandler``: by ``Content-Length``, or
chunked (trailers read and dropped), as clients send it."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" not in (handler.headers.get("Transfer-Encoding") or "").lower():
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else b""
    parts = []
    while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
        parts.append(handler.rfile.read(size))
        handler.rfile.readline()
    while handler.rfile.readline().strip():
        pass  # trailers
    return b"".join(parts)
