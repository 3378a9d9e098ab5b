"""Runs in the sandbox (tests/sandbox/test_names_outside.py): raw clients without any proxy
setting, each connecting to the address the sandbox's resolver gives a name (or to a literal),
printing what each got back as one JSON line. Standard library only."""

import json
import socket
import ssl
import sys

MARKER = "COATCHECK-NAMES "


def address(host, port):
    return socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]


def exchange(sock, raw):
    sock.sendall(raw)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode("latin-1")
        data += chunk


def plain(host, raw, port=80):
    try:
        with socket.create_connection((address(host, port), port), timeout=30) as s:
            return exchange(s, raw.encode())
    except OSError as exc:
        return f"ERROR {type(exc).__name__}: {exc}"


def tls(host, sni, path):
    try:
        ctx = ssl.create_default_context()  # the sandbox's bundle: the proxy's CA
        ctx.check_hostname = False
        raw = socket.create_connection((address(host, 443), 443), timeout=30)
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            return exchange(s, head.encode())
    except (OSError, ssl.SSLError) as exc:
        return f"ERROR {type(exc).__name__}: {exc}"


arg = json.loads(sys.argv[1])
api, other, opaque, mark = arg["api"], arg["other"], arg["opaque"], arg["mark"]
out = {
    "http10_no_host": plain(api, f"GET /echo?k=h10&m={mark} HTTP/1.0\r\n\r\n"),
    "http_wrong_host": plain(
        api, f"GET /echo?k=wh&m={mark} HTTP/1.1\r\nHost: {other}\r\nConnection: close\r\n\r\n"
    ),
    "http_upper_dot": plain(
        api.upper() + ".",
        f"GET /echo?k=hu&m={mark} HTTP/1.1\r\nHost: {api.upper()}.\r\nConnection: close\r\n\r\n",
    ),
    "tls_upper": tls(api.upper(), api.upper(), f"/echo?k=tu&m={mark}"),
    "tls_dot": tls(api + ".", api + ".", f"/echo?k=td&m={mark}"),
    "tls_wrong_sni": tls(api, other, f"/echo?k=ts&m={mark}"),
    "opaque_plain_http": plain(
        opaque, f"GET /echo?k=op&m={mark} HTTP/1.1\r\nHost: {opaque}\r\nConnection: close\r\n\r\n"
    ),
    "literal_443": plain("127.0.0.1", "GET / HTTP/1.0\r\n\r\n", 443),
}
print(MARKER + json.dumps(out), flush=True)
