"""The sandbox's PID 1, run on the host: exit codes, signals, and the relay to a Unix socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.security.wire import listening_ports

INIT = Path(__file__).resolve().parents[2] / "sandbox" / "init.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp_path: Path, *cmd: str, port: int | None = None) -> subprocess.Popen[bytes]:
    """Run init with ``cmd`` as its job; ``port=0`` lets init pick its listening port."""
    env = dict(os.environ, COATCHECK_PROXY_SOCKET=str(tmp_path / "p.sock"),
               COATCHECK_PROXY_PORT=str(free_port() if port is None else port))  # fmt: skip
    return subprocess.Popen([sys.executable, str(INIT), "--", *cmd], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_is_the_commands(tmp_path, code):
    p = start(tmp_path, "sh", "-c", f"exit {code}")
    assert p.wait(timeout=10) == code
    p.stdout.close(), p.stderr.close()  # type: ignore[union-attr]


def test_missing_command_exits_127(tmp_path):
    p = start(tmp_path, "no-such-command-xyz")
    assert p.wait(timeout=10) == 127
    assert b"cannot run" in p.stderr.read()  # type: ignore[union-attr]
    p.stdout.close(), p.stderr.close()  # type: ignore[union-attr]


def test_sigterm_is_forwarded_and_reported_as_128_plus_n(tmp_path):
    """SIGTERM only once init forwards it: init installs its handlers before it starts relaying,
    so a connection that reaches the Unix socket is the event that says it is ready."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "p.sock"))
    server.listen(1)
    relayed = threading.Event()

    def accept_once() -> None:
        conn, _ = server.accept()
        relayed.set()
        conn.close()

    threading.Thread(target=accept_once, daemon=True).start()
    p = start(tmp_path, "sh", "-c", "echo started; exec sleep 30", port=0)
    try:
        # The job runs, so init has forked, so its listener is bound (bind comes first).
        assert p.stdout.readline() == b"started\n"  # type: ignore[union-attr]
        [port] = listening_ports(p.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            assert relayed.wait(timeout=10), "init never relayed a connection"
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("init did not forward SIGTERM: its job still runs")
        assert code == 128 + signal.SIGTERM
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        p.stdout.close(), p.stderr.close()  # type: ignore[union-attr]
        server.close()


def test_relay_reaches_the_unix_socket(tmp_path):
    sock_path = tmp_path / "p.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(1)

    def echo_once() -> None:
        conn, _ = server.accept()
        conn.sendall(b"proxy says: " + conn.recv(100))
        conn.close()

    threading.Thread(target=echo_once, daemon=True).start()
    port = free_port()
    script = (
        f"import socket;s=socket.create_connection(('127.0.0.1',{port}));s.sendall(b'hi');"
        "print(s.recv(100).decode())"
    )
    p = start(tmp_path, sys.executable, "-c", script, port=port)
    out, _ = p.communicate(timeout=15)
    assert p.returncode == 0 and out.strip() == b"proxy says: hi"
    server.close()
