"""Runs INSIDE a sandbox (the clients image): each client of the JSON argument, with every
proxy variable removed from its environment, and reports what it printed.

    coatcheck run ... -- python3 -c "$(cat clients_driver.py)" '{"clients": {...}, ...}'

``clients`` maps a case name to an argv ("$T" in an argument is the secret's placeholder);
``sni`` cases open TLS to a name's address with another name in the SNI; ``dns`` cases
send a raw query to the sandbox's name server; ``connect`` cases send raw bytes to an address
and port; ``names`` are looked up with getaddrinfo (after everything else). One JSON object
is printed on a line that starts with ``MARKER``.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys

MARKER = "COATCHECK-CLIENTS "
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy", "NODE_USE_ENV_PROXY")  # fmt: skip


def run(argv: list[str], env: dict[str, str]) -> dict[str, object]:
    argv = [a.replace("$T", env.get("T", "")) for a in argv]
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {"rc": -1, "stdout": "", "stderr": "timed out"}
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def sni(dial: str, server_name: str, host: str, path: str) -> dict[str, object]:
    ctx = ssl.create_default_context()
    try:
        raw = socket.create_connection((dial, 443), timeout=30)
        with raw, ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            return {"ok": True, "response": data.decode("utf-8", "replace")}
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def dns(packet_hex: str, transport: str) -> str:
    """A raw query to the sandbox's name server; the reply in hex, or the error."""
    packet = bytes.fromhex(packet_hex)
    with open("/etc/resolv.conf") as f:
        server = (f.read().split()[1], 53)
    try:
        if transport == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(packet, server)
                return s.recv(4096).hex()
        with socket.create_connection(server, timeout=3) as s:
            s.sendall(len(packet).to_bytes(2, "big") + packet)
            size = int.from_bytes(s.recv(2), "big")
            return s.recv(size).hex()
    except OSError as exc:
        return f"error: {type(exc).__name__}"


def connect(name: str, port: int, payload: str) -> dict[str, object]:
    """A raw TCP connection: what came back, or the error."""
    try:
        with socket.create_connection((name, port), timeout=10) as s:
            s.sendall(payload.encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return {"ok": True, "response": data.decode("utf-8", "replace")}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def lookup(name: str) -> list[str]:
    try:
        return sorted({str(i[4][0]) for i in socket.getaddrinfo(name, 443)})
    except OSError as exc:
        return [f"error: {exc}"]


def main(arg: dict) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    with open("/etc/resolv.conf") as f:
        resolv = f.read()
    return {
        "env_has_proxy": sorted(k for k in PROXY_VARS if k in os.environ),
        "clients": {case: run(argv, env) for case, argv in arg.get("clients", {}).items()},
        "sni": {case: sni(*spec) for case, spec in arg.get("sni", {}).items()},
        "dns": {case: dns(*spec) for case, spec in arg.get("dns", {}).items()},
        "connect": {case: connect(*spec) for case, spec in arg.get("connect", {}).items()},
        "names": {name: lookup(name) for name in arg.get("names", [])},
        "resolv_conf": resolv,
        "interfaces": sorted(os.listdir("/sys/class/net")),
    }


if __name__ == "__main__":
    print(MARKER + json.dumps(main(json.loads(sys.argv[1]))), flush=True)
