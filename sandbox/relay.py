"""The sandbox init's sockets: the relay of the proxy port to the run's Unix socket, the name
server, and the relays of ports 443 and 80 of name-mapped addresses (see names.py).

- ``127.0.0.1:$COATCHECK_PROXY_PORT``: every connection is spliced to the proxy's socket as it
  is (proxy-aware clients speak CONNECT or absolute-form HTTP there themselves).
- ``$COATCHECK_DNS:53`` (UDP and TCP): names.answer, for every query.
- ``0.0.0.0:443`` and ``:80``: the address the client dialled (getsockname) is mapped back to
  the name it was given, and the connection reaches the proxy as ``CONNECT name:port``; a
  refusal is one line on the job's stderr (and, on port 80, the proxy's 403 for the client).

One thread waits on every listener; each connection gets a thread of its own. Standard library
only: the sandbox image carries this package beside init.py.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from sandbox import names

BUFSIZE = 256 * 1024
CONNECT_WAIT_S = 15.0
ANSWER_WAIT_S = 30.0  # for the proxy's answer to a CONNECT, and a DNS-over-TCP query
MAPPED_PORTS = (443, 80)
MAX_HEAD = 64 * 1024


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(BUFSIZE)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


_ANSWERED = threading.Event()  # the proxy has answered once: a socket gone now stays gone


def _connect_unix(path: str) -> socket.socket | None:
    """The run's socket; waits up to CONNECT_WAIT_S for it while the proxy may still be
    starting, not once it has answered (its worker died: the run fails closed at once)."""
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
            _ANSWERED.set()
            return upstream
        except OSError:
            upstream.close()
            if _ANSWERED.is_set() or time.monotonic() > deadline:
                return None
            time.sleep(0.02)


def serve(conn: socket.socket, path: str) -> None:
    upstream = _connect_unix(path)
    if upstream is None:
        conn.sendall(
            b"HTTP/1.1 502 Bad Gateway\r\nX-Coatcheck-Reason: proxy_unreachable\r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        conn.close()
        return
    _splice(conn, upstream)


def _say(line: str) -> None:
    """One line on the job's stderr (one write: lines of concurrent relays don't mix)."""
    clean = "".join(c if c.isprintable() else " " for c in line)[:400]
    with contextlib.suppress(OSError):
        os.write(2, f"coatcheck: {clean}\n".encode(errors="replace"))


def _read_answer(upstream: socket.socket) -> tuple[bytes, bytes]:
    """The proxy's answer to a CONNECT: its head (up to the blank line) and what followed."""
    upstream.settimeout(ANSWER_WAIT_S)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < MAX_HEAD:
            chunk = upstream.recv(BUFSIZE)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    upstream.settimeout(None)
    head, sep, rest = data.partition(b"\r\n\r\n")
    return head + sep, rest


def _refusal(head: bytes, rest: bytes, upstream: socket.socket) -> tuple[bytes, str, str]:
    """The rest of a refusal (its body, up to Content-Length), its reason and its text."""
    reason, length = "", 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "x-coatcheck-reason":
            reason = value.strip()
        elif key.strip().lower() == "content-length" and value.strip().isdigit():
            length = min(int(value.strip()), MAX_HEAD)
    upstream.settimeout(ANSWER_WAIT_S)
    with contextlib.suppress(OSError):
        while len(rest) < length:
            chunk = upstream.recv(length - len(rest))
            if not chunk:
                break
            rest += chunk
    lines = rest.decode("utf-8", "replace").strip().splitlines()
    text = lines[0] if lines else ""
    return rest, reason or "refused", text.partition(f"({reason}): ")[2] or text


def _close_politely(conn: socket.socket) -> None:
    """Close after a reply, reading what the client still sends first (closing with unread
    data would reset the connection, and the client could lose the reply)."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(5)
        for _ in range(64):
            if not conn.recv(BUFSIZE):
                break
    conn.close()


def serve_mapped(conn: socket.socket, path: str, table: names.NameMap) -> None:
    """A connection to a name's pool address: ``CONNECT name:port`` to the proxy, then splice."""
    address, port = conn.getsockname()[:2]
    name = table.name_of(address)
    if name is None:
        _say(f"connection to {address}:{port} refused: no name in this sandbox was given that "
             "address (connect to a host name, or use the proxy at $HTTPS_PROXY)")  # fmt: skip
        conn.close()
        return
    upstream = _connect_unix(path)
    if upstream is None:
        _say(f"connection to {name}:{port} failed: the proxy is unreachable")
        conn.close()
        return
    try:
        upstream.sendall(f"CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n".encode())
        head, rest = _read_answer(upstream)
    except OSError:
        head, rest = b"", b""
    if head.split(b" ", 2)[1:2] == [b"200"]:
        if rest:
            conn.sendall(rest)
        _splice(conn, upstream)
        return
    if not head:
        _say(f"connection to {name}:{port} failed: the proxy did not answer")
    else:
        rest, reason, text = _refusal(head, rest, upstream)
        _say(f"connection to {name}:{port} refused by the proxy ({reason}): {text}")
    upstream.close()
    if port == 80 and head:  # plain HTTP: the client reads the proxy's refusal itself
        with contextlib.suppress(OSError):
            conn.sendall(head + rest)
        _close_politely(conn)
    else:
        conn.close()


def _splice(conn: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    back.start()
    _pipe(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def _dns_tcp(conn: socket.socket, table: names.NameMap) -> None:
    """DNS over TCP: length-prefixed queries until the client is done or goes quiet."""
    conn.settimeout(ANSWER_WAIT_S)
    with contextlib.suppress(OSError), conn:
        while True:
            size = _recv_exactly(conn, 2)
            query = _recv_exactly(conn, int.from_bytes(size, "big")) if size else None
            reply = names.answer(query, table) if query else None
            if reply is None:
                return
            conn.sendall(len(reply).to_bytes(2, "big") + reply)


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


Handler = Callable[[socket.socket], None]


def accepting(serve: Callable[..., None], *args: object) -> Handler:
    def accept(listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # gone before we got to it (the listener is non-blocking)
            return
        conn.setblocking(True)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_guarded, args=(serve, conn, *args), daemon=True).start()

    return accept


def _guarded(serve: Callable[..., None], conn: socket.socket, *args: object) -> None:
    """A connection's thread: whatever happens to it, no traceback lands on the job's stderr,
    and the connection is closed."""
    with contextlib.suppress(Exception), conn:
        serve(conn, *args)


def _dns_udp(table: names.NameMap) -> Handler:
    def reply(sock: socket.socket) -> None:
        try:
            query, peer = sock.recvfrom(4096)
            answer = names.answer(query, table)
            if answer is not None:
                sock.sendto(answer, peer)
        except OSError:
            return

    return reply


def listen(kind: int, address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    if kind == socket.SOCK_STREAM:
        sock.listen(128)
    sock.setblocking(False)
    return sock


def name_listeners(path: str, dns: str) -> dict[socket.socket, Handler]:
    """DNS on ``dns`` port 53 and the relays of ports 443 and 80 (none when they can't be
    bound: the job then runs with the proxy variables alone, and is told so)."""
    table = names.NameMap()
    made: dict[socket.socket, Handler] = {}
    try:
        made[listen(socket.SOCK_DGRAM, (dns, 53))] = _dns_udp(table)
        made[listen(socket.SOCK_STREAM, (dns, 53))] = accepting(_dns_tcp, table)
        for port in MAPPED_PORTS:
            any_address = ("0.0.0.0", port)  # noqa: S104 - the sandbox's own network namespace
            made[listen(socket.SOCK_STREAM, any_address)] = accepting(serve_mapped, path, table)
    except OSError as exc:
        for sock in made:
            sock.close()
        _say(f"name lookups are off in this sandbox ({exc.strerror}); only clients that use "
             "$HTTPS_PROXY reach the network")  # fmt: skip
        return {}
    return made


def serve_forever(listeners: dict[socket.socket, Handler]) -> None:
    """One thread waits on every listener; each connection gets a thread of its own."""
    by_fd = {sock.fileno(): (sock, handler) for sock, handler in listeners.items()}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            sock, handler = by_fd[fd]
            with contextlib.suppress(Exception):  # nothing a job sends may stop the listeners
                handler(sock)
