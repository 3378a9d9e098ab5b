"""sandbox/relay.py when the run's proxy goes away mid-run (a worker of ``coatcheck proxy
--workers N`` that died: its runs fail closed). The relay waits for the run's socket at the
start (an ephemeral proxy may still be starting), but once the proxy has answered, a socket
that is gone will not come back: every later connection should get its 502 at once instead of
after CONNECT_WAIT_S (15 s per request, observed from a sandbox: three requests took 45 s)."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from sandbox import relay


def _served(path: Path, request: bytes) -> bytes:
    """What a client of relay.serve (the proxy port's relay) sending ``request`` gets back."""
    client, conn = socket.socketpair()
    client.settimeout(60)
    with client:  # (_guarded: the init's wrapper, which closes the connection whatever happens)
        t = threading.Thread(target=relay._guarded, args=(relay.serve, conn, str(path)),
                             daemon=True)  # fmt: skip
        t.start()
        if request:  # (an empty send to a relay that already answered and closed: EPIPE)
            client.sendall(request)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := client.recv(4096):
            data += chunk
        t.join(30)
        return data


def test_after_the_proxy_is_lost_a_connection_is_refused_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "proxy.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        threading.Thread(target=answer, daemon=True).start()
        assert _served(path, b"GET http://x.test/ HTTP/1.1\r\nHost: x.test\r\n\r\n").endswith(b"ok")
    path.unlink()  # the worker died: its run's socket is gone for good

    def no_waiting(_s: float) -> None:
        raise AssertionError("waited for a proxy that had already answered and is gone")

    monkeypatch.setattr(relay.time, "sleep", no_waiting)
    got = _served(path, b"")  # (nothing sent: the 502 is read before the connection closes)
    assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"X-Coatcheck-Reason: proxy_unreachable" in got
