"""Byte-level clients for attacks no well-behaved HTTP library will send.

``open_tunnel`` sends a CONNECT of the caller's choosing to a run's relay (the path a sandbox's
traffic takes) and, when it is accepted, wraps the socket in TLS with any SNI. ``Conn`` then
writes raw HTTP/1.1 requests and reads responses, so one connection can carry a refused request
and a later one (keep-alive), or two pipelined ones.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REASON = "x-coatcheck-reason"


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def refusal(self) -> str | None:
        return self.header(REASON)

    def raw(self) -> bytes:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.status} {self.reason}\n{head}\n\n".encode() + self.body


class Closed(Exception):
    """The peer closed the connection before a complete response."""


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Response:
        self.send(build(method, target, headers, body))
        return self.read()

    def _line(self) -> bytes:
        line = self.file.readline(65536)
        if not line:
            raise Closed("connection closed")
        return line

    def read(self, *, head_only: bool = False) -> Response:
        status_line = self._line().decode("latin-1").rstrip("\r\n")
        _version, status, *rest = status_line.split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            line = self._line().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = Response(int(status), rest[0] if rest else "", headers)
        if head_only or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() not in (b"\r\n", b"\n"):
                        pass
                    break
                body += self.file.read(size)
                self._line()
            resp.body = body
        elif (length := resp.header("Content-Length")) is not None:
            resp.body = self.file.read(int(length))
        else:
            resp.body = self.file.read()
        return resp

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True if the peer has closed (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.file.read(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def relay_address(proxy_url: str) -> tuple[str, int]:
    u = urlsplit(proxy_url)
    return u.hostname or "127.0.0.1", u.port or 80


def connect(proxy_url: str, target: str, *, timeout: float = 15) -> tuple[Conn, Response]:
    """Open a connection to the proxy and send ``CONNECT target``; the proxy's answer."""
    sock = socket.create_connection(relay_address(proxy_url), timeout=timeout)
    conn = Conn(sock)
    conn.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    return conn, conn.read(head_only=True)


def open_tunnel(
    proxy_url: str, target: str, ca: Path, *, sni: str | None, alpn: list[str] | None = None
) -> Conn:
    """CONNECT to ``target``, then TLS inside with ``sni`` (verified against the proxy CA)."""
    conn, resp = connect(proxy_url, target)
    if resp.status != 200:
        conn.close()
        raise AssertionError(f"CONNECT {target} refused: {resp.status} {resp.refusal}")
    ctx = ssl.create_default_context(cafile=str(ca))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if sni is None:
        ctx.check_hostname = False
    tls = ctx.wrap_socket(conn.sock, server_hostname=sni)
    return Conn(tls)


def plain_conn(proxy_url: str) -> Conn:
    return Conn(socket.create_connection(relay_address(proxy_url), timeout=15))


def listening_ports(pid: int) -> list[int]:
    """TCP ports ``pid`` listens on (from /proc: its socket inodes in LISTEN state)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:
                ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return sorted(set(ports))
