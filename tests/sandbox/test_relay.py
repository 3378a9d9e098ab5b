"""sandbox/relay.py on the host: a connection to a name's pool address becomes
``CONNECT name:port`` on the run's socket, and a refusal is one line on stderr. (Ports 443 and
80 themselves, the name server and real clients: test_unproxied_clients.py, in a sandbox.)"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import relay
from sandbox.names import NameMap

REFUSAL = (b"HTTP/1.1 403 Forbidden\r\nX-Coatcheck-Reason: not_allowlisted\r\n"
           b"Content-Length: 62\r\nConnection: close\r\n\r\n"
           b"coatcheck refused this request (not_allowlisted): no, thanks\n")  # fmt: skip
TABLE = NameMap()
API = "api.relay.test"
API_ADDRESS = str(TABLE.address_of(API))
Script = Callable[[socket.socket], None]


class FakeProxy:
    """The run's Unix socket: records the head it got on one connection, then runs ``script``."""

    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(4)
        self.got: list[bytes] = []
        threading.Thread(target=self._one, args=(script,), daemon=True).start()

    def _one(self, script: Script) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self.server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                self.got.append(data)
                script(conn)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Callable[[Script], FakeProxy]]:
    made: list[FakeProxy] = []

    def start(script: Script) -> FakeProxy:
        made.append(FakeProxy(tmp_path / "p.sock", script))
        return made[-1]

    yield start
    for p in made:
        p.server.close()


@pytest.fixture
def dial() -> Iterator[Callable[[str, FakeProxy], tuple[socket.socket, threading.Thread]]]:
    """A client connected to ``address``, and the thread of serve_mapped on the init's side."""
    made: list[socket.socket] = []

    def connect(address: str, proxy: FakeProxy) -> tuple[socket.socket, threading.Thread]:
        with socket.socket() as listener:
            listener.bind((address, 0))
            listener.listen(1)
            client = socket.create_connection(listener.getsockname(), timeout=10)
            made.append(client)
            conn, _ = listener.accept()
        t = threading.Thread(target=relay.serve_mapped, args=(conn, str(proxy.path), TABLE))
        t.start()
        return client, t

    yield connect
    for s in made:
        s.close()


def test_a_mapped_address_is_connected_as_its_name_and_spliced(proxy, dial, capfd):
    def echo_upper(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        conn.sendall(conn.recv(100).upper())

    p = proxy(echo_upper)
    client, t = dial(API_ADDRESS, p)
    port = client.getpeername()[1]
    client.sendall(b"hello")
    assert client.recv(100) == b"HELLO"
    client.close()
    t.join(10)
    assert p.got == [f"CONNECT {API}:{port} HTTP/1.1\r\nHost: {API}:{port}\r\n\r\n".encode()]
    assert capfd.readouterr().err == ""


def test_a_refusal_closes_the_connection_with_one_line_on_stderr(proxy, dial, capfd):
    p = proxy(lambda conn: conn.sendall(REFUSAL))
    client, t = dial(API_ADDRESS, p)
    port = client.getpeername()[1]
    t.join(10)
    assert client.recv(100) == b""  # (not port 80: a TLS client can't be shown the 403)
    assert capfd.readouterr().err == (
        f"coatcheck: connection to {API}:{port} refused by the proxy (not_allowlisted): "
        "no, thanks\n"
    )


def test_an_address_of_no_name_never_reaches_the_proxy(proxy, dial, capfd):
    p = proxy(lambda conn: None)
    client, t = dial("127.100.200.200", p)
    t.join(10)
    assert client.recv(100) == b""
    err = capfd.readouterr().err
    assert "connection to 127.100.200.200:" in err
    assert "refused: no name in this sandbox was given that address" in err
    assert p.got == []


def test_a_proxy_that_hangs_up_is_reported(proxy, dial, capfd):
    p = proxy(lambda conn: None)
    client, t = dial(API_ADDRESS, p)
    t.join(10)
    assert client.recv(100) == b""
    assert f"connection to {API}:" in capfd.readouterr().err
    assert p.got and p.got[0].startswith(f"CONNECT {API}:".encode())
