"""Host side of the name-mapping tests: fake upstreams on ports 443 and 80 of a loopback address
of their own (the proxy dials ``name:443`` for a name-mapped connection, so the fake must sit
on the real port; the proxy reaches it through ``--resolve NAME:ADDRESS``), and one sandbox run
of tests/sandbox/clients_driver.py in the clients image.

Binding ports 443 and 80 needs root (or CAP_NET_BIND_SERVICE), as the Docker tier has anyway.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from tests.sandbox.helpers import Home, Result, coatcheck
from tests.support.upstream import Upstream, _handler

DRIVER = (Path(__file__).parent / "clients_driver.py").read_text()
DRIVER_MARKER = "COATCHECK-CLIENTS "


@dataclass
class Upstreams:
    """The TLS upstream on ADDRESS:443 and the plain HTTP one on ADDRESS:80."""

    address: str
    tls: Upstream
    plain: Upstream

    def requests_with(self, mark: str) -> list[str]:
        return [r.path for up in (self.tls, self.plain) for r in up.received if mark in r.path]


def _serve(up: Upstream, address: str, port: int, ctx: ssl.SSLContext | None) -> None:
    server = ThreadingHTTPServer((address, port), _handler(up))
    server.daemon_threads = True
    if ctx is not None:
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    up.server, up.port = server, port
    threading.Thread(target=server.serve_forever, daemon=True).start()


@contextmanager
def loopback_upstreams(ca: trustme.CA, names: tuple[str, ...]) -> Iterator[Upstreams]:
    """Upstreams for ``names`` on a random 127.77.x.y (other sessions pick their own)."""
    rand = secrets.randbelow(250 * 250)
    address = f"127.77.{rand // 250 + 1}.{rand % 250 + 1}"
    tls, plain = Upstream(ca=ca, names=names), Upstream(ca=ca, names=names)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    _serve(tls, address, 443, ctx)
    try:
        _serve(plain, address, 80, None)
        try:
            yield Upstreams(address, tls, plain)
        finally:
            plain.close()
    finally:
        tls.close()


def run_clients(home: Home, image: str, ca_file: Path, flags: list[str], arg: dict[str, Any]
                ) -> tuple[Result, dict[str, Any]]:  # fmt: skip
    """One sandbox run of the driver; its result and its report."""
    r = coatcheck(home, "run", "--image", image, "--upstream-ca", str(ca_file), *flags, "--",
                  "python3", "-c", DRIVER, json.dumps(arg))  # fmt: skip
    for line in r.stdout.splitlines():
        if line.startswith(DRIVER_MARKER):
            return r, dict(json.loads(line[len(DRIVER_MARKER) :]))
    raise AssertionError(f"no driver output: {r}")


def node_fetch(url: str) -> list[str]:
    script = (
        "fetch(process.argv[1], {headers: {authorization: 'Bearer ' + process.env.T}})"
        ".then(r => r.text().then(t => console.log(r.status + ' ' + t)))"
        ".catch(e => { console.error('fetch failed:', e.cause || e); process.exit(3) })"
    )
    return ["node", "-e", script, url]


def node_https(url: str) -> list[str]:
    script = (
        "require('https').get(process.argv[1], {headers: {authorization: 'Bearer ' + "
        "process.env.T}}, r => { let b = ''; r.on('data', d => b += d); "
        "r.on('end', () => console.log(r.statusCode + ' ' + b)) })"
        ".on('error', e => { console.error('https failed:', e); process.exit(3) })"
    )
    return ["node", "-e", script, url]


def urllib3_pool(url: str) -> list[str]:
    script = (
        "import os, sys, urllib3\n"
        "r = urllib3.PoolManager().request('GET', sys.argv[1], "
        "headers={'Authorization': 'Bearer ' + os.environ['T']}, retries=False)\n"
        "print(r.status, r.data.decode())\n"
    )
    return ["python3", "-c", script, url]


def go_get(url: str) -> list[str]:
    return ["goget", url, "Authorization", "Bearer $T"]


def curl_noproxy(url: str) -> list[str]:
    """curl with every proxy ignored; prints the body, then the status on its own last line."""
    auth = "Authorization: Bearer $T"
    return ["curl", "-sS", "--noproxy", "*", "-H", auth, "-w", "\n%{http_code}", url]


def status_and_body(case: str, stdout: str) -> tuple[str, str]:
    """(status, body) from a client's output: curl's status is last, the others' first."""
    if case.startswith("curl"):
        body, _, status = stdout.rpartition("\n")
        return status, body
    status, _, body = stdout.partition(" ")
    return status, body
