"""coatcheck benchmark (`make bench`): proxy throughput/latency, then run start-up.

1. Keep-alive HTTPS GETs of /echo on a local TLS upstream (trustme CA), one persistent
   connection per client, the same minimal client for every mode:
     direct     client -> upstream
     mitmdump   client -> plain mitmdump (CONNECT, then TLS to mitmdump's CA)
     coatcheck  client -> the run's Unix socket (as the in-sandbox relay) -> the real service;
                every request carries `Authorization: Bearer <placeholder>`: injected on the
                way out, scrubbed on the way back (the echo returns the header)
   In each round the modes take turns in blocks of requests (so a busy neighbour hits them all
   alike); the report gives medians over rounds, and each proxy's CPU time per request (from
   /proc), which moves much less than wall-clock numbers on a shared machine.
2. Start-up: `docker run --rm IMAGE true` vs `coatcheck run -- true`, cold (ephemeral proxy)
   and warm (`coatcheck proxy` running), interleaved, medians.
3. A Markdown summary for the README's "Performance" section.

A measurement, not a test: it prints PASS/MISS against the targets and exits 0 unless the set-up
itself fails. Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import trustme  # noqa: E402

from proxy import control  # noqa: E402
from proxy.paths import ProxyPaths  # noqa: E402
from tests.support.harness import start_proxy  # noqa: E402
from vault.keystore import FileKeystore  # noqa: E402
from vault.secret import SecretValue  # noqa: E402
from vault.store import Vault  # noqa: E402

HERE = Path(__file__).resolve().parent
VENV_BIN = REPO / ".venv" / "bin"
NAME = "api.coatcheck.test"
SECRET = "BENCH_TOKEN"
IMAGE = "coatcheck/sandbox:latest"
MODES = ("direct", "mitmdump", "coatcheck")
ROUND_TIME_LIMIT_S = 10.0  # a round stops once a mode has spent this long measuring
BENCH_BUDGET_S = 170.0  # start-up repeats stop when the next one would end past this
CMD_TIMEOUT_S = 60.0
INHERITED = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
    "all_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
)  # fmt: skip
TARGETS = {"tput": 0.95, "p50_ms": 1.0, "warm": 2.0, "cold": 5.0}


def say(text: str = "") -> None:
    print(text, flush=True)


# -- the client ------------------------------------------------------------------------------
class Client:
    """One keep-alive HTTP/1.1-over-TLS connection, optionally through a CONNECT tunnel."""

    def __init__(self, raw: socket.socket, *, port: int, cafile: Path, tunnel: bool) -> None:
        raw.settimeout(10)
        if tunnel:
            raw.sendall(f"CONNECT {NAME}:{port} HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n".encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = raw.recv(4096)
                if not chunk or len(buf) > 65536:
                    raise ConnectionError(f"CONNECT: no answer ({buf[:200]!r})")
                buf += chunk
            if buf.split(b" ", 2)[1] != b"200":
                raise ConnectionError(f"CONNECT refused: {buf[:300]!r}")
        ctx = ssl.create_default_context(cafile=str(cafile))
        ctx.set_alpn_protocols(["http/1.1"])
        self.sock = ctx.wrap_socket(raw, server_hostname=NAME)
        self.rfile = self.sock.makefile("rb")
        self.host = f"{NAME}:{port}"

    def request_bytes(self, path: str, headers: dict[str, str]) -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": self.host, **headers}.items())
        return f"GET {path} HTTP/1.1\r\n{head}\r\n".encode()

    def roundtrip(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        self.sock.sendall(request)
        rf = self.rfile
        line = rf.readline(65537)
        if not line:
            raise ConnectionError("connection closed")
        status = int(line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for _ in range(200):
            h = rf.readline(65537)
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise ConnectionError("connection closed in headers")
            k, _, v = h.partition(b":")
            headers[k.strip().lower()] = v.strip()
        if b"content-length" in headers:
            body = rf.read(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            for _ in range(100_000):
                size = int(rf.readline(1024).split(b";")[0], 16)
                if size == 0:
                    for _ in range(200):  # trailers
                        if rf.readline(65537) in (b"\r\n", b"\n", b""):
                            break
                    break
                parts.append(rf.read(size))
                rf.read(2)
            body = b"".join(parts)
        else:
            raise ConnectionError("response without a length on a keep-alive connection")
        return status, headers, body

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


# -- the three targets -----------------------------------------------------------------------
@dataclass
class Target:
    mode: str
    pid: int | None  # the proxy's process, for its CPU time
    connect: Callable[[], socket.socket]
    cafile: Path
    tunnel: bool
    auth: str  # the Authorization value the client sends
    expect_upstream_auth: str  # what the upstream must receive

    def client(self, port: int) -> Client:
        return Client(self.connect(), port=port, cafile=self.cafile, tunnel=self.tunnel)


def tcp(port: int) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    return connect


def unix(path: str) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        return s

    return connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def upstream_stats(port: int, ca_file: Path) -> dict[str, int]:
    import json

    c = Client(tcp(port)(), port=port, cafile=ca_file, tunnel=False)
    try:
        status, _, body = c.roundtrip(c.request_bytes("/stats", {"Connection": "close"}))
        assert status == 200, status
        return dict(json.loads(body))
    finally:
        c.close()


# -- measuring -------------------------------------------------------------------------------
@dataclass
class Sample:
    """One mode in one round."""

    rps: float
    p50_ms: float
    p99_ms: float
    n: int
    cpu_ms: float | None  # the proxy process's CPU time per request: robust to a busy machine


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` (from /proc), 0 when there is none."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: list[float], q: float) -> float:
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def measure_round(
    targets: dict[str, Target],
    order: tuple[str, ...],
    up_port: int,
    ca_file: Path,
    *,
    requests: int,
    warmup: int,
    block: int,
) -> dict[str, Sample]:
    """``requests`` per mode on one connection per mode, after ``warmup``; the modes take turns
    in blocks of ``block`` requests, so a busy neighbour hits them all alike."""
    before = upstream_stats(up_port, ca_file)
    conns: dict[str, Client] = {}
    lat: dict[str, list[float]] = {m: [] for m in order}
    busy = dict.fromkeys(order, 0.0)
    cpu = dict.fromkeys(order, 0.0)
    clock = time.perf_counter
    try:
        for m in order:
            conns[m] = targets[m].client(up_port)
        reqs = {
            m: conns[m].request_bytes("/echo", {"Authorization": targets[m].auth, "Accept": "*/*"})
            for m in order
        }
        for m in order:
            for _ in range(warmup):
                if conns[m].roundtrip(reqs[m])[0] != 200:
                    raise RuntimeError(f"{m}: non-200 in warm-up")
        done = 0
        while done < requests and max(busy.values()) < ROUND_TIME_LIMIT_S:
            k = min(block, requests - done)
            for m in order:
                c, req, out, pid = conns[m], reqs[m], lat[m], targets[m].pid
                cpu0 = cpu_seconds(pid)
                start = clock()
                for _ in range(k):
                    t0 = clock()
                    status = c.roundtrip(req)[0]
                    out.append(clock() - t0)
                    if status != 200:
                        raise RuntimeError(f"{m}: status {status}")
                busy[m] += clock() - start
                cpu[m] += cpu_seconds(pid) - cpu0
            done += k
    finally:
        for c in conns.values():
            c.close()
    after = upstream_stats(up_port, ca_file)
    got_conns = after["connections"] - before["connections"] - 1  # minus /stats itself
    got_reqs = after["requests"] - before["requests"] - 1
    if got_conns != len(order) or got_reqs != len(order) * (warmup + done):
        say(
            f"    (!) upstream saw {got_conns} connections, {got_reqs} requests: "
            f"expected {len(order)}, {len(order) * (warmup + done)}"
        )
    samples = {}
    for m in order:
        flat = sorted(lat[m])
        samples[m] = Sample(
            rps=len(flat) / busy[m],
            p50_ms=percentile(flat, 0.50) * 1000,
            p99_ms=percentile(flat, 0.99) * 1000,
            n=len(flat),
            cpu_ms=cpu[m] * 1000 / len(flat) if targets[m].pid else None,
        )
    return samples


def verify(target: Target, up_port: int, placeholder: str, real: str) -> str:
    """One request: the upstream got the expected Authorization, the client no real value."""
    c = target.client(up_port)
    try:
        status, headers, body = c.roundtrip(
            c.request_bytes("/echo", {"Authorization": target.auth, "Accept": "*/*"})
        )
    finally:
        c.close()
    want = hashlib.sha256(target.expect_upstream_auth.encode()).hexdigest().encode()
    seen = b"".join(k + b":" + v for k, v in headers.items()) + body
    problems = []
    if status != 200:
        problems.append(f"status {status}")
    if headers.get(b"x-auth-sha256") != want:
        problems.append("upstream did not receive the expected Authorization")
    if real.encode() in seen:
        problems.append("the real value reached the client")
    if placeholder.encode() not in body:
        problems.append("the echo lacks the placeholder")
    if problems:
        raise RuntimeError(f"{target.mode}: " + "; ".join(problems))
    if target.mode == "coatcheck":
        return "upstream got the real value; client saw only the placeholder"
    return "upstream got the header unchanged"


@dataclass
class ModeResult:
    samples: list[Sample]

    def med(self, attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples]
        return statistics.median(values) if None not in values else float("nan")


def proxy_bench(tmp: Path, args: argparse.Namespace) -> dict[str, ModeResult]:
    ca = trustme.CA()
    ca_file = tmp / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf = ca.issue_cert(NAME)
    cert_file, key_file = tmp / "upstream-cert.pem", tmp / "upstream-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    leaf.private_key_pem.write_to_path(str(key_file))

    home = tmp / "cchome"
    home.mkdir()
    key = home / "vault.key"
    os.environ["COATCHECK_VAULT_KEY_FILE"] = str(key)
    real = "ghp_" + os.urandom(18).hex()
    Vault.open(home, keystore=FileKeystore(key)).set(SECRET, SecretValue(real), [NAME])
    sockets = Path(f"/tmp/ccb-{os.getpid()}")

    procs: list[subprocess.Popen[bytes]] = []
    harness = None
    try:
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "upstream_fast.py"), str(cert_file), str(key_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        procs.append(upstream)
        assert upstream.stdout is not None
        up_port = int(upstream.stdout.readline() or 0)
        if not up_port:
            raise RuntimeError("upstream did not start")

        mitm_port = free_port()
        mitm_conf = tmp / "mitmconf"
        mitm = subprocess.Popen(
            [str(VENV_BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
             "--listen-port", str(mitm_port), "--set", f"confdir={mitm_conf}",
             "--set", f"ssl_verify_upstream_trusted_ca={ca_file}",
             "--set", "connection_strategy=lazy", "-s", str(HERE / "mitm_resolve.py")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(mitm)

        harness = start_proxy(
            home, sockets, upstream_ca=ca_file, extra=(f"--resolve={NAME}:127.0.0.1",)
        )
        run = harness.register((SECRET,))
        ph = run.placeholders[SECRET]

        def mitm_ready() -> bool:
            if mitm.poll() is not None:
                raise RuntimeError("mitmdump exited")
            try:
                socket.create_connection(("127.0.0.1", mitm_port), timeout=1).close()
            except OSError:
                return False
            return (mitm_conf / "mitmproxy-ca-cert.pem").exists()

        wait_for(mitm_ready, "mitmdump")

        bearer = f"Bearer {ph}"
        targets = {
            "direct": Target("direct", None, tcp(up_port), ca_file, False, bearer, bearer),
            "mitmdump": Target(
                "mitmdump",
                mitm.pid,
                tcp(mitm_port),
                mitm_conf / "mitmproxy-ca-cert.pem",
                True,
                bearer,
                bearer,
            ),
            "coatcheck": Target(
                "coatcheck",
                harness.proc.pid,
                unix(run.socket),
                harness.ca_cert,
                True,
                bearer,
                f"Bearer {real}",
            ),
        }
        for t in targets.values():
            say(f"  verify {t.mode:<9} ok: {verify(t, up_port, ph, real)}")

        res = {m: ModeResult([]) for m in MODES}
        say(
            f"\n  one connection per mode; per round {args.requests} requests per mode "
            f"(+{args.warmup} warm-up) in turns of {args.block}; {args.rounds} rounds"
        )
        for r in range(args.rounds):
            order = MODES[r % 3 :] + MODES[: r % 3]  # rotate who goes first
            got = measure_round(
                targets,
                order,
                up_port,
                ca_file,
                requests=args.requests,
                warmup=args.warmup,
                block=args.block,
            )
            for m in MODES:
                s = got[m]
                res[m].samples.append(s)
                cpu = f"{s.cpu_ms:5.2f} ms" if s.cpu_ms is not None else "    -   "
                say(
                    f"    round {r + 1} {m:<9} {s.rps:7.0f} req/s  p50 {s.p50_ms:6.2f} ms  "
                    f"p99 {s.p99_ms:6.2f} ms  proxy CPU/req {cpu}  n={s.n}"
                )
        return res
    finally:
        os.environ.pop("COATCHECK_VAULT_KEY_FILE", None)
        if harness is not None:
            harness.close()
        for p in procs:
            if p.stdin:
                p.stdin.close()
            stop(p)
            if p.stdout:
                p.stdout.close()
        shutil.rmtree(sockets, ignore_errors=True)


# -- start-up --------------------------------------------------------------------------------
def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=CMD_TIMEOUT_S)  # fmt: skip
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-500:]
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err}")
    return took


def startup_bench(tmp: Path, repeats: int, deadline: float) -> dict[str, list[float]]:
    base = {k: v for k, v in os.environ.items() if k not in INHERITED}

    def env_for(name: str) -> dict[str, str]:
        home = tmp / name
        return {**base, "COATCHECK_HOME": str(home), "COATCHECK_VAULT_KEY_FILE": str(home / "key")}

    cold_env, warm_env = env_for("cold"), env_for("warm")
    warm_home = Path(warm_env["COATCHECK_HOME"])
    warm_paths = ProxyPaths.for_home(warm_home)
    coatcheck = str(VENV_BIN / "coatcheck")
    cmds = {
        "bare": (["docker", "run", "--rm", IMAGE, "true"], base),
        "cold": ([coatcheck, "run", "--", "true"], cold_env),
        "warm": ([coatcheck, "run", "--", "true"], warm_env),
    }
    service = None
    try:
        t0 = time.perf_counter()
        service = subprocess.Popen([coatcheck, "proxy"], env=warm_env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL)  # fmt: skip

        def answers() -> bool:
            if service.poll() is not None:
                raise RuntimeError("`coatcheck proxy` exited")
            return control.ping(warm_paths.control) is not None

        wait_for(answers, "coatcheck proxy")
        say(f"  `coatcheck proxy` answering after {time.perf_counter() - t0:.2f} s")
        for argv, env in cmds.values():  # unmeasured: CA creation, caches
            timed(argv, env)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(repeats):
            t_repeat = time.monotonic()
            for kind, (argv, env) in cmds.items():
                times[kind].append(timed(argv, env))
            say(f"    {i + 1}: " + "  ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
            if i + 1 < repeats and 2 * time.monotonic() - t_repeat > deadline:
                say(f"  (stopping after {i + 1} repeats: the bench's time budget)")
                break
        return times
    finally:
        stop(service)
        shutil.rmtree(warm_paths.sockets, ignore_errors=True)


# -- report ----------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="per mode per round")
    ap.add_argument("--warmup", type=int, default=100, help="per mode per round")
    ap.add_argument("--block", type=int, default=250, help="requests per turn")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="start-up repetitions")
    ap.add_argument("--skip-proxy", action="store_true")
    ap.add_argument("--skip-startup", action="store_true")
    args = ap.parse_args()
    for name in INHERITED:
        os.environ.pop(name, None)

    began = time.perf_counter()

    def elapsed() -> float:
        return time.perf_counter() - began

    today = datetime.date.today().isoformat()
    from importlib.metadata import version

    machine = (
        f"{os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}, mitmproxy {version('mitmproxy')}"
    )
    load0 = os.getloadavg()[0]
    say(f"coatcheck benchmark, {today} ({machine}); load average {load0:.1f}")
    tmp = Path(tempfile.mkdtemp(prefix="cc-bench-"))
    proxy: dict[str, ModeResult] = {}
    start: dict[str, list[float]] = {}
    try:
        if not args.skip_proxy:
            say("\n== 1. proxy: keep-alive HTTPS GET /echo (Authorization: Bearer <placeholder>)")
            proxy = proxy_bench(tmp, args)
        if not args.skip_startup:
            say(f"\n== 2. run start-up: `{IMAGE} true`, up to {args.repeats} interleaved repeats")
            start = startup_bench(tmp, args.repeats, time.monotonic() - elapsed() + BENCH_BUDGET_S)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines: list[str] = []
    checks: list[tuple[str, str, str, str]] = []
    if proxy:
        rounds = len(proxy["direct"].samples)
        lines += [
            f"| Keep-alive HTTPS GET, 1 connection (median of {rounds} rounds) | requests/s "
            "| p50 ms | p99 ms | proxy CPU ms/request |",
            "|---|---:|---:|---:|---:|",
        ]
        label = {
            "direct": "direct to the upstream",
            "mitmdump": "plain mitmdump",
            "coatcheck": "coatcheck (injects + scrubs)",
        }
        for m in MODES:
            r = proxy[m]
            cpu = "-" if m == "direct" else f"{r.med('cpu_ms'):.2f}"
            lines.append(
                f"| {label[m]} | {r.med('rps'):,.0f} | {r.med('p50_ms'):.2f} | "
                f"{r.med('p99_ms'):.2f} | {cpu} |"
            )
        cc, md, dr = proxy["coatcheck"], proxy["mitmdump"], proxy["direct"]
        tput = cc.med("rps") / md.med("rps")
        dp50 = cc.med("p50_ms") - md.med("p50_ms")
        checks += [
            (
                "coatcheck / mitmdump throughput",
                f"{tput:.2f}",
                f">= {TARGETS['tput']}",
                verdict(tput >= TARGETS["tput"]),
            ),
            (
                "coatcheck p50 - mitmdump p50",
                f"{dp50:+.2f} ms",
                f"<= +{TARGETS['p50_ms']:.0f} ms",
                verdict(dp50 <= TARGETS["p50_ms"]),
            ),
            (
                "mitmdump / coatcheck proxy CPU per request (capacity)",
                f"{md.med('cpu_ms') / cc.med('cpu_ms'):.2f}",
                "context",
                "",
            ),
            ("mitmdump / direct throughput", f"{md.med('rps') / dr.med('rps'):.2f}", "context", ""),
        ]
    if start:
        med = {k: statistics.median(v) for k, v in start.items()}
        if lines:
            lines.append("")
        lines += [
            f"| Start-up of `true` in `{IMAGE}` (median of {len(start['bare'])}) | seconds |",
            "|---|---:|",
            f"| `docker run --rm` (bare) | {med['bare']:.2f} |",
            f"| `coatcheck run` warm (`coatcheck proxy` running) | {med['warm']:.2f} |",
            f"| `coatcheck run` cold (starts its own proxy) | {med['cold']:.2f} |",
        ]
        w, c = med["warm"] / med["bare"], med["cold"] / med["bare"]
        checks += [
            (
                "warm run / bare docker",
                f"{w:.2f}x",
                f"<= {TARGETS['warm']:.0f}x",
                verdict(w <= TARGETS["warm"]),
            ),
            (
                "cold run / bare docker",
                f"{c:.2f}x",
                f"<= {TARGETS['cold']:.0f}x",
                verdict(c <= TARGETS["cold"]),
            ),
        ]
    if checks:
        lines += ["", "| Ratio | value | target | |", "|---|---:|---:|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in checks]

    say(f"\n== 3. summary (Markdown; the bench took {elapsed():.0f} s)\n")
    load = f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    say(f"Measured {today} with `make bench` on {machine} ({load}).\n")
    say("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
