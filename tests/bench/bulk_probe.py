"""Bulk transfer speed through the proxy: one large download or upload at a time, for
``direct``, plain ``mitmdump`` and ``coatcheck``, with the proxy's CPU time per GiB.

    python tests/bench/bulk_probe.py [--size MIB] [--rounds N] [--kind random|text]
                                     [--modes direct,mitmdump,coatcheck,coatcheck-bare]

A measurement, not a test; the bench can import it:

    with bulk_targets(tmp) as targets:
        warm_up(targets["coatcheck"])  # the proxy compiles its patterns on first use
        result = measure_bulk(targets["coatcheck"], "download", 200 * MIB)

- **upstream**: this file run as ``--upstream CERT KEY`` in its own process: a threaded TLS
  server (trustme CA) with ``GET /bulk/<bytes>?kind=random|text|secret`` (a fixed-length body of
  random bytes, of NDJSON text with base64 blobs, or of text holding the real value) and
  ``POST /sink`` (reads a body of any length, answers ``{"received": n}``).
- **direct**: the client talks TLS to the upstream.
- **mitmdump**: plain ``mitmdump`` with ``stream_large_bodies=1`` (so it streams every body,
  as coatcheck does, rather than buffer it whole), reached with CONNECT.
- **coatcheck**: the real service (``runner.proxyd``) with a vaulted secret for the upstream's
  name, reached with CONNECT on the run's Unix socket as the sandbox's relay does. Every request
  carries ``Authorization: Bearer <placeholder>``, so the real value is injected and the response
  body is scrubbed (held-back tail and all); an upload is leak-scanned as it streams. A scrubbed
  body comes back chunked (a replacement may change its length): the client reads either framing.
- **coatcheck-bare**: the same service, a run with no secret (nothing to scrub or scan).

The client reads and writes 1 MiB at a time. Throughput is wall-clock (noisy on a shared
machine); the proxy's CPU seconds per GiB (its whole process tree, from /proc) move much less.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VENV_BIN = REPO / ".venv" / "bin"
NAME = "api.coatcheck.test"  # tests/bench/mitm_resolve.py dials 127.0.0.1 for it
SECRET = "BULK_TOKEN"
MODES = ("direct", "mitmdump", "coatcheck")
BARE = "coatcheck-bare"  # a run with no secret: nothing to scrub or scan (a reference point)
DIRECTIONS = ("download", "upload")
KINDS = ("random", "text", "secret")
MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = MIB  # what the client and the upstream read and write at a time
TIMEOUT_S = 60.0


# -- the upstream (its own process) ----------------------------------------------------------
def _pattern(kind: str, secret: str) -> bytes:
    """1 MiB of body, repeated to any length."""
    rng = os.urandom(BLOCK)
    if kind == "random":
        return rng
    lines, i = [], 0
    while sum(map(len, lines)) < BLOCK:
        blob = base64.b64encode(rng[i % BLOCK : i % BLOCK + 96]).decode()
        extra = f', "token": "{secret}"' if kind == "secret" and i % 50 == 0 else ""
        lines.append(f'{{"id": {i}, "data": "{blob}"{extra}}}\n'.encode())
        i += 1
    return b"".join(lines)[:BLOCK]


def _serve(conn: socket.socket, ctx: ssl.SSLContext, patterns: dict[str, bytes]) -> None:
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        head, rest = _read_head(tls, bytearray())
        line, _, fields = head.partition(b"\r\n")
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = _headers(fields)
        if method == "POST":
            received = _drain(tls, headers, rest)
            body = json.dumps({"received": received}).encode()
            tls.sendall(_response_head(len(body), "application/json") + body)
            return
        path, _, query = target.partition("?")
        size = int(path.rsplit("/", 1)[1])
        data = memoryview(patterns[query.partition("kind=")[2] or "random"])
        tls.sendall(_response_head(size, "application/octet-stream"))
        while size > 0:
            n = min(size, len(data))
            tls.sendall(data[:n])
            size -= n
    except (OSError, ValueError, KeyError, IndexError, ssl.SSLError):
        return
    finally:
        tls.close()


def _response_head(length: int, kind: str) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def upstream_main(cert: str, key: str) -> None:
    """Serve until stdin closes; prints the port first."""
    secret = os.environ.get("BULK_SECRET", "not-a-secret")
    patterns = {kind: _pattern(kind, secret) for kind in KINDS}
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve, args=(conn, ctx, patterns), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(listener.getsockname()[1], flush=True)
    sys.stdin.read()
    os._exit(0)


# -- HTTP/1.1 on a blocking socket, 1 MiB at a time ------------------------------------------
def _read_head(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytearray]:
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk or len(buf) > 65536:
            raise ConnectionError(f"no HTTP head: {bytes(buf[:200])!r}")
        buf += chunk
    return bytes(buf[:end]), buf[end + 4 :]


def _headers(fields: bytes) -> dict[bytes, bytes]:
    out = {}
    for line in fields.split(b"\r\n"):
        k, _, v = line.partition(b":")
        out[k.strip().lower()] = v.strip()
    return out


def _fields(head: bytes) -> dict[bytes, bytes]:
    return _headers(head.partition(b"\r\n")[2])


class _Body:
    """Counts the bytes of a body, Content-Length or chunked; ``keep`` keeps them too."""

    def __init__(self, headers: dict[bytes, bytes], keep: bool = False) -> None:
        self.chunked = headers.get(b"transfer-encoding", b"").lower() == b"chunked"
        self.left = -1 if self.chunked else int(headers.get(b"content-length", b"0"))
        self.count, self.done, self.kept = 0, self.left == 0, bytearray() if keep else None
        self._line = bytearray()  # a chunk-size line in progress
        self._skip = 0  # the CRLF after a chunk's data

    def _take(self, view: memoryview) -> None:
        self.count += len(view)
        if self.kept is not None:
            self.kept += view

    def feed(self, view: memoryview) -> None:
        if not self.chunked:
            take = view[: self.left]
            self._take(take)
            self.left -= len(take)
            self.done = self.left <= 0
            return
        i, n = 0, len(view)
        while i < n and not self.done:
            if self.left > 0:
                take = view[i : i + self.left]
                self._take(take)
                self.left -= len(take)
                i += len(take)
                self._skip = 2 if self.left == 0 else 0
            elif self._skip:
                step = min(self._skip, n - i)
                self._skip, i = self._skip - step, i + step
            else:
                end = bytes(view[i : min(n, i + 64)]).find(b"\n")
                if end < 0:
                    self._line += view[i : i + 64]
                    i += 64
                    continue
                self._line += view[i : i + end]
                i += end + 1
                size = int(bytes(self._line).split(b";")[0].strip(), 16)
                self._line.clear()
                self.left, self.done = size, size == 0


def _read_body(
    sock: socket.socket, headers: dict[bytes, bytes], rest: bytearray, keep: bool
) -> _Body:
    body = _Body(headers, keep)
    body.feed(memoryview(rest))
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    while not body.done:
        n = sock.recv_into(buf)
        if not n:
            raise ConnectionError(f"body ended early after {body.count} bytes")
        body.feed(view[:n])
    return body


def _drain(sock: socket.socket, headers: dict[bytes, bytes], rest: bytearray) -> int:
    return _read_body(sock, headers, rest, False).count


# -- targets ---------------------------------------------------------------------------------
@dataclass
class Target:
    mode: str
    pid: int | None  # the proxy's process, for its CPU time
    connect: Callable[[], socket.socket]
    cafile: Path
    tunnel: bool
    port: int  # the upstream's
    auth: str = ""  # the Authorization value the client sends, if any
    real: str = ""  # the real value the client must never see (coatcheck)

    def open(self) -> ssl.SSLSocket:
        raw = self.connect()
        raw.settimeout(TIMEOUT_S)
        if self.tunnel:
            raw.sendall(f"CONNECT {NAME}:{self.port} HTTP/1.1\r\nHost: {NAME}\r\n\r\n".encode())
            head, _ = _read_head(raw, bytearray())
            if head.split(b" ", 2)[1] != b"200":
                raise ConnectionError(f"CONNECT refused: {head[:300]!r}")
        ctx = ssl.create_default_context(cafile=str(self.cafile))
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx.wrap_socket(raw, server_hostname=NAME)

    def head(self, method: str, path: str, extra: str = "") -> bytes:
        auth = f"Authorization: {self.auth}\r\n" if self.auth else ""
        return f"{method} {path} HTTP/1.1\r\nHost: {NAME}:{self.port}\r\n{auth}{extra}\r\n".encode()


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` and its descendants (the service's workers), reaped
    children included, from /proc; 0 when there is none."""
    if pid is None:
        return 0.0
    parents = {int(p.name): s[1] for p in Path("/proc").iterdir() if p.name.isdigit()
               if (s := _stat(int(p.name)))}  # fmt: skip
    tree, todo = [pid], [pid]
    while todo:
        parent = str(todo.pop())
        kids = [child for child, ppid in parents.items() if ppid == parent]
        tree += kids
        todo += kids
    ticks = sum(sum(map(int, f[11:15])) for f in map(_stat, tree) if f)
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class BulkResult:
    mode: str
    direction: str
    size: int
    seconds: float
    cpu_s: float  # the proxy's, 0 for direct

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds

    @property
    def cpu_s_per_gib(self) -> float:
        return self.cpu_s * GIB / self.size


def _download(target: Target, size: int, kind: str, keep: bool = False) -> _Body:
    with target.open() as sock:
        sock.sendall(target.head("GET", f"/bulk/{size}?kind={kind}"))
        head, rest = _read_head(sock, bytearray())
        if head.split(b" ", 2)[1] != b"200":
            raise RuntimeError(f"{target.mode}: {head[:300]!r}")
        return _read_body(sock, _fields(head), rest, keep)


def _upload(target: Target, size: int) -> int:
    data = memoryview(os.urandom(BLOCK))
    with target.open() as sock:
        sock.sendall(target.head("POST", "/sink", f"Content-Length: {size}\r\n"))
        left = size
        while left > 0:
            n = min(left, BLOCK)
            sock.sendall(data[:n])
            left -= n
        head, rest = _read_head(sock, bytearray())
        body = _read_body(sock, _fields(head), rest, keep=True)
        if head.split(b" ", 2)[1] != b"200" or body.kept is None:
            raise RuntimeError(f"{target.mode}: {head[:300]!r}")
        return int(json.loads(bytes(body.kept))["received"])


def measure_bulk(target: Target, direction: str, size: int, kind: str = "random") -> BulkResult:
    """One transfer of ``size`` bytes through ``target``: its wall time and the proxy's CPU."""
    cpu0, t0 = cpu_seconds(target.pid), time.perf_counter()
    down = direction == "download"
    got = _download(target, size, kind).count if down else _upload(target, size)
    took, cpu = time.perf_counter() - t0, cpu_seconds(target.pid) - cpu0
    if got != size:
        raise RuntimeError(f"{target.mode} {direction}: {got} bytes of {size}")
    return BulkResult(target.mode, direction, size, took, cpu)


def warm_up(target: Target, size: int = 16 * MIB) -> None:
    """One unmeasured transfer each way: the proxy compiles its patterns for the run's values
    on first use (tens of milliseconds, once per set of values)."""
    for kind in ("random", "text"):
        _download(target, size, kind)
    _upload(target, size)


def verify(target: Target) -> str:
    """A text body holding the real value (every 50 lines): coatcheck must scrub each one."""
    body = _download(target, 8 * MIB, "secret", keep=True).kept or b""
    if target.real and target.real.encode() in body:
        raise RuntimeError(f"{target.mode}: the real value reached the client")
    if target.mode == "coatcheck" and target.auth.split()[-1].encode() not in body:
        raise RuntimeError(f"{target.mode}: the real value was not replaced")
    return f"{len(body) // MIB} MiB"


def _start(argv: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw)  # type: ignore[call-overload, no-any-return]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    from core import pids  # (REPO is on sys.path once bulk_targets has started anything)

    if proc.stdin:
        proc.stdin.close()
    pids.stop(proc, timeout=10)  # (closes its stdout too)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.05)


def _tcp(port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)


def _unix(path: str) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s

    return connect


@contextlib.contextmanager
def bulk_targets(tmp: Path, modes: tuple[str, ...] = MODES) -> Iterator[dict[str, Target]]:
    """The upstream and the proxies of ``modes``, running until the block ends."""
    sys.path.insert(0, str(REPO))
    import trustme

    from core.placeholders import mint
    from tests.support.harness import start_proxy
    from vault.keystore import FileKeystore
    from vault.secret import SecretValue
    from vault.store import Vault

    ca = trustme.CA()
    ca_file, cert_file, key_file = tmp / "bulk-ca.pem", tmp / "bulk-cert.pem", tmp / "bulk-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(NAME)
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))
    real = "ghp_" + os.urandom(18).hex()
    procs: list[subprocess.Popen[bytes]] = []
    harness, sockets = None, Path(f"/tmp/ccbulk-{os.getpid()}")
    try:
        env = {**os.environ, "BULK_SECRET": real}
        up = _start(
            [sys.executable, __file__, "--upstream", str(cert_file), str(key_file)], env=env
        )
        procs.append(up)
        assert up.stdout is not None
        port = int(up.stdout.readline() or 0)
        if not port:
            raise RuntimeError("the bulk upstream did not start")
        targets = {"direct": Target("direct", None, _tcp(port), ca_file, False, port)}
        if "mitmdump" in modes:
            mitm_port, conf = _free_port(), tmp / "bulk-mitmconf"
            mitm = _start([str(VENV_BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
                           "--listen-port", str(mitm_port), "--set", f"confdir={conf}",
                           "--set", f"ssl_verify_upstream_trusted_ca={ca_file}",
                           "--set", "stream_large_bodies=1", "--set", "connection_strategy=lazy",
                           "-s", str(HERE / "mitm_resolve.py")])  # fmt: skip
            procs.append(mitm)
            cert = conf / "mitmproxy-ca-cert.pem"
            _wait_for(lambda: _listening(mitm_port) and cert.exists(), "mitmdump")
            targets["mitmdump"] = Target("mitmdump", mitm.pid, _tcp(mitm_port), cert, True, port)
        if "coatcheck" in modes or BARE in modes:
            home = tmp / "bulk-home"
            home.mkdir()
            key = home / "vault.key"
            os.environ["COATCHECK_VAULT_KEY_FILE"] = str(key)
            Vault.open(home, keystore=FileKeystore(key)).set(SECRET, SecretValue(real), [NAME])
            harness = start_proxy(
                home, sockets, upstream_ca=ca_file, extra=(f"--resolve={NAME}:127.0.0.1",)
            )
            placeholder = mint()
            path = _register(harness.paths.control, {SECRET: placeholder}, ())
            targets["coatcheck"] = Target(
                "coatcheck", harness.proc.pid, _unix(path), harness.ca_cert, True, port,
                auth=f"Bearer {placeholder}", real=real,
            )  # fmt: skip
            path = _register(harness.paths.control, {}, (NAME,))
            targets[BARE] = Target(BARE, harness.proc.pid, _unix(path), harness.ca_cert, True, port)
        yield {m: targets[m] for m in modes}
    finally:
        os.environ.pop("COATCHECK_VAULT_KEY_FILE", None)
        if harness is not None:
            harness.close()
        for p in procs:
            _stop(p)
        shutil.rmtree(sockets, ignore_errors=True)


def _register(control_path: Path, secrets: dict[str, str], allow: tuple[str, ...]) -> str:
    """Register a run with the service; the path of its socket (no relay: the client dials it)."""
    from core.messages import Registration
    from proxy import control

    run_id = f"r-bulk{os.urandom(4).hex()}"
    reg = Registration(run_id=run_id, secrets=secrets, allow=allow)
    return str(control.call(control_path, reg.to_json())["socket"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# -- the report ------------------------------------------------------------------------------
def main() -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", type=int, default=200, help="MiB per transfer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", choices=KINDS[:2], default="random", help="download body")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--directions", default=",".join(DIRECTIONS))
    args = ap.parse_args()
    modes = tuple(m for m in (*MODES, BARE) if m in args.modes.split(","))
    directions = tuple(d for d in DIRECTIONS if d in args.directions.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="cc-bulk-"))
    results: dict[tuple[str, str], list[BulkResult]] = {}
    try:
        with bulk_targets(tmp, modes) as targets:
            for t in targets.values():
                print(f"verify {t.mode:<9} ok ({verify(t)} of text, value every 50 lines)")
                warm_up(t)
            for r in range(args.rounds):
                order = modes[r % len(modes) :] + modes[: r % len(modes)]
                for d in directions:
                    for m in order:
                        res = measure_bulk(targets[m], d, args.size * MIB, args.kind)
                        results.setdefault((m, d), []).append(res)
                        print(f"round {r + 1} {d:<8} {m:<9} {res.mib_s:7.1f} MiB/s  "
                              f"proxy CPU {res.cpu_s_per_gib:6.2f} s/GiB", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmedians ({args.size} MiB, {args.kind} bytes, {args.rounds} rounds)")
    for d in directions:
        for m in modes:
            rs = results[(m, d)]
            mib = statistics.median(r.mib_s for r in rs)
            cpu = statistics.median(r.cpu_s_per_gib for r in rs)
            print(f"  {d:<8} {m:<9} {mib:7.1f} MiB/s  proxy CPU {cpu:6.2f} s/GiB")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--upstream":
        upstream_main(sys.argv[2], sys.argv[3])
    sys.exit(main())
