"""Bulk download through an opaque host, against direct and against the intercepting proxy.

    .venv/bin/python tests/bench/opaque_probe.py [--mib 200] [--rounds 3]

:func:`measure_download` (used by ``make bench``) starts a TLS upstream in its own process (a
trustme CA; ``GET /bytes/N`` answers N bytes), the real proxy service with one run that has the
upstream's name both ways (``--allow-opaque`` for ``opaque.coatcheck.test``, ``--allow`` for
``api.coatcheck.test``, both mapped to 127.0.0.1), and downloads with ``curl`` in turns:

    direct       curl -> upstream
    opaque       curl -> the in-sandbox relay -> the run's socket -> spliced -> upstream
    intercepted  curl -> the in-sandbox relay -> the run's socket -> mitmproxy -> upstream

Each mode's MiB/s is the median over rounds (curl's own figure), and the proxy's CPU seconds per
GiB come from /proc (robust to a busy machine). Only loopback traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OPAQUE_NAME = "opaque.coatcheck.test"
INTERCEPTED_NAME = "api.coatcheck.test"
MODES = ("direct", "opaque", "intercepted")
CHUNK = 1024 * 1024
CURL_TIMEOUT_S = 300


# -- the upstream (its own process) ----------------------------------------------------------
def _serve_conn(conn: socket.socket, ctx: ssl.SSLContext, blob: memoryview) -> None:
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
        rfile = tls.makefile("rb")
        while True:
            line = rfile.readline(65537)
            if not line:
                return
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            size = int(line.split(b" ")[1].rsplit(b"/", 1)[1])
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            while size > 0:
                n = min(size, len(blob))
                tls.sendall(blob[:n])
                size -= n
    except (OSError, ValueError, IndexError):
        return
    finally:
        conn.close()


def serve(cert: str, key: str) -> None:
    """Serve ``GET /bytes/N`` over TLS on a free port (printed) until stdin closes."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    blob = memoryview(b"x" * CHUNK)
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve_conn, args=(conn, ctx, blob), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()


# -- the in-sandbox relay (as sandbox/init.py runs it) ----------------------------------------
def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(256 * 1024):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay_one(conn: socket.socket, path: str) -> None:
    with conn, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
        up.connect(path)
        back = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
        back.start()
        _pipe(conn, up)
        back.join()


def relay(path: str) -> tuple[str, socket.socket]:
    """A TCP listener on 127.0.0.1 relaying to the run's socket ``path``: (proxy URL, it)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_relay_one, args=(conn, path), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", listener


# -- measuring -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """This process's CPU seconds (the relay's threads; curl is a child, not counted)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, extra: list[str]) -> tuple[int, float]:
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{speed_download}",
         "--max-time", str(CURL_TIMEOUT_S), *extra, url],
        capture_output=True, text=True, check=True, timeout=CURL_TIMEOUT_S + 10,
    )  # fmt: skip
    size, speed = out.stdout.split()
    return int(size), float(speed)


def measure_download(tmp: Path, *, mib: int = 200, rounds: int = 3) -> dict[str, Any]:
    """Download ``mib`` MiB ``rounds`` times per mode, in turns; medians and proxy CPU/GiB:
    ``{"mib_s": {mode: ...}, "cpu_s_per_gib": {mode: ...}, "ratio_opaque_direct": ...}``."""
    import trustme

    from core.messages import Registration
    from proxy import control
    from tests.support.harness import start_proxy

    ca = trustme.CA()
    ca_file = tmp / "probe-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(OPAQUE_NAME, INTERCEPTED_NAME)
    cert, key = tmp / "probe-cert.pem", tmp / "probe-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    home = tmp / "probe-home"
    home.mkdir(exist_ok=True)
    sockets = Path(tempfile.mkdtemp(prefix="ccop-", dir="/tmp"))
    upstream = subprocess.Popen(
        [sys.executable, __file__, "serve", str(cert), str(key)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    harness, listener = None, None
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        harness = start_proxy(home, sockets, upstream_ca=ca_file)
        resolve = [f"{OPAQUE_NAME}:127.0.0.1", f"{INTERCEPTED_NAME}:127.0.0.1"]
        reg = Registration(
            run_id=f"r-probe-{os.getpid()}",
            allow=(INTERCEPTED_NAME,),
            allow_opaque=(OPAQUE_NAME,),
            resolve=tuple(resolve),
        )
        reply = control.call(harness.paths.control, reg.to_json())
        proxy_url, listener = relay(reply["socket"])
        size = mib * 1024 * 1024
        urls = {
            "direct": (
                f"https://{OPAQUE_NAME}:{port}/bytes/{size}",
                ["--cacert", str(ca_file), "--resolve", f"{OPAQUE_NAME}:{port}:127.0.0.1"],
            ),
            "opaque": (
                f"https://{OPAQUE_NAME}:{port}/bytes/{size}",
                ["--cacert", str(ca_file), "-x", proxy_url],
            ),
            "intercepted": (
                f"https://{INTERCEPTED_NAME}:{port}/bytes/{size}",
                ["--cacert", str(harness.ca_cert), "-x", proxy_url],
            ),
        }
        speeds: dict[str, list[float]] = {m: [] for m in MODES}
        cpu: dict[str, float] = dict.fromkeys(MODES, 0.0)
        relay_cpu: dict[str, float] = dict.fromkeys(MODES, 0.0)
        for r in range(rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                before, own = cpu_seconds(harness.proc.pid), _own_cpu()
                got, speed = _curl(*urls[mode])
                cpu[mode] += cpu_seconds(harness.proc.pid) - before
                relay_cpu[mode] += _own_cpu() - own
                if got != size:
                    raise RuntimeError(f"{mode}: {got} bytes, expected {size}")
                speeds[mode].append(speed / (1024 * 1024))
        gib = size * rounds / 1024**3
        med = {m: round(statistics.median(v), 1) for m, v in speeds.items()}
        return {
            "mib": mib,
            "rounds": rounds,
            "mib_s": med,
            "cpu_s_per_gib": {m: round(cpu[m] / gib, 3) for m in MODES},
            "relay_cpu_s_per_gib": {m: round(relay_cpu[m] / gib, 3) for m in MODES},
            "ratio_opaque_direct": round(med["opaque"] / med["direct"], 2),
            "ratio_intercepted_direct": round(med["intercepted"] / med["direct"], 3),
        }
    finally:
        if listener is not None:
            listener.close()
        if harness is not None:
            harness.close()
        if upstream.stdin is not None:
            upstream.stdin.close()
        upstream.wait(timeout=10)
        if upstream.stdout is not None:
            upstream.stdout.close()
        shutil.rmtree(sockets, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(argv[1], argv[2])
        return 0
    p = argparse.ArgumentParser(prog="opaque_probe")
    p.add_argument("--mib", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure_download(Path(tmp), mib=args.mib, rounds=args.rounds), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
