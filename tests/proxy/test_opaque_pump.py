"""The kernel pump of opaque tunnels (proxy/pump.py) on socket pairs: bytes both ways, counted;
an EOF passed on as a half-close while the other way goes on; idle after a half-close, a reset
and a stop each end it."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from proxy.pump import Way, pump


@dataclass
class Rig:
    client: socket.socket  # the sandbox's end
    server: socket.socket  # the upstream's end
    up: Way
    down: Way
    stop: int
    result: list[str]
    thread: threading.Thread

    def wait(self) -> str:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return self.result[0]


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.settimeout(10)
    return a, b


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    linger = getattr(request, "param", 10.0)
    proxy_client, client = _pair()
    proxy_server, server = _pair()
    stop_r, stop_w = os.pipe()
    up, down = Way(proxy_client, proxy_server), Way(proxy_server, proxy_client)
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(pump([up, down], stop_r, linger=linger)), daemon=True
    )
    thread.start()
    yield Rig(client, server, up, down, stop_w, result, thread)
    os.write(stop_w, b"x")
    thread.join(timeout=30)
    for s in (proxy_client, client, proxy_server, server):
        s.close()
    os.close(stop_r)
    os.close(stop_w)


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(1 << 20):
        out += chunk
    return out


def test_both_ways_with_half_close_and_counts(rig: Rig) -> None:
    """The client sends its request and half-closes; the download goes on after that."""
    rig.client.sendall(b"request")
    rig.client.shutdown(socket.SHUT_WR)
    assert read_all(rig.server) == b"request"  # the EOF came through
    body = os.urandom(3 * 1024 * 1024 + 5)
    sender = threading.Thread(target=lambda: (rig.server.sendall(body), rig.server.close()))
    sender.start()
    assert read_all(rig.client) == body
    sender.join()
    assert rig.wait() == "closed"
    assert (rig.up.count, rig.down.count) == (len(b"request"), len(body))


@pytest.mark.parametrize("rig", [0.2], indirect=True)
def test_idle_after_a_half_close_ends_it(rig: Rig) -> None:
    rig.client.shutdown(socket.SHUT_WR)
    assert rig.wait() == "idle"


def test_a_reset_ends_both_ways(rig: Rig) -> None:
    rig.server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rig.client.sendall(b"x" * 100)
    rig.server.close()
    rig.client.sendall(b"y" * 100)
    assert rig.wait() in ("reset", "closed")


def test_stop_ends_it(rig: Rig) -> None:
    os.write(rig.stop, b"x")
    assert rig.wait() == "stopped"
