"""A hostile upstream answers with a malformed response that quotes the credential. mitmproxy
would put its parse error, quoting the bad line, into a 502 page for the client: the value must
not come back that way, nor reach the audit log."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
import trustme

from tests.security.conftest import API

RESPONSES = {
    "bad-header-line": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nNo colon here VALUE\r\n\r\nok",
    "bad-status-line": b"HTTP/1.1 2x0 VALUE\r\nContent-Length: 2\r\n\r\nok",
    "bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: VALUE\r\n\r\nok",
    "garbage": b"GARBAGE VALUE\r\n\r\n",
}


class RawUpstream:
    """A TLS server that answers every request with ``self.reply`` (with VALUE filled in)."""

    def __init__(self, ca: trustme.CA) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(API).configure_cert(self.ctx)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply = b""
        self.got: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
                self.got.append(tls.recv(65536))
                tls.sendall(self.reply)
                tls.close()
            except (OSError, ssl.SSLError):
                conn.close()


@pytest.fixture(scope="module")
def raw_upstream(test_ca: trustme.CA) -> Iterator[RawUpstream]:
    up = RawUpstream(test_ca)
    yield up
    up.sock.close()


@pytest.mark.parametrize("kind", sorted(RESPONSES))
def test_malformed_response_quoting_the_value_never_reaches_the_client(
    proxy, raw_upstream, secret, canary, kind, tag
):
    secret("RAW_TOKEN")
    run = proxy.register(("RAW_TOKEN",))
    raw_upstream.reply = RESPONSES[kind].replace(b"VALUE", canary.encode())
    r = subprocess.run(
        ["curl", "-sS", "-i", "--http1.1", "--cacert", str(proxy.ca_cert), "-x", run.proxy_url,
         "-H", f"Authorization: Bearer {run.placeholders['RAW_TOKEN']}",
         f"https://{API}:{raw_upstream.port}/?t={tag}"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    [got] = [g for g in list(raw_upstream.got) if tag.encode() in g]
    assert canary.encode() in got, "the real value was not injected"
    assert canary not in r.stdout + r.stderr, "the value came back in the proxy's error page"
    assert canary not in proxy.audit_log.read_text()
