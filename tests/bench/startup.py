"""Run start-up, the CLI's CPU, and a run's first request.

- ``docker run --rm IMAGE true`` (bare) vs ``coatcheck run -- true`` warm (a shared ``coatcheck
  proxy`` running) and cold (no service: the run starts its own proxy), interleaved, medians.
- The CPU of each command's own process (user + system), apart from what the children it
  reaped used (the cold path's ephemeral proxy, for one); for warm runs also what the
  service's process tree spent meanwhile (coordinator, workers, and a zygote's forked child
  if the warm path hands runs to one). The Docker daemon's CPU is in none of these.
- A run's first request: ``curl`` in the sandbox fetching an event stream from the local
  upstream (``--resolve``, ``--upstream-ca``), ``time_starttransfer`` as curl measures it, for a
  warm run and for a cold run (whose first request may wait for its proxy to be up).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from proxy import control
from proxy.paths import ProxyPaths
from tests.bench.common import IMAGE, INHERITED, NAME, VENV_BIN, median, say, stop, wait_for
from tests.bench.common import tree_cpu_seconds as tree_cpu

CMD_TIMEOUT_S = 60.0
KINDS = ("bare", "warm", "cold")


@dataclass
class Timed:
    kind: str
    seconds: float
    own_cpu_ms: float  # the command's own process
    children_cpu_ms: float  # the children it reaped
    service_cpu_ms: float | None  # the warm service's process tree meanwhile
    stdout: str


def _clk(fields: list[str], *idx: int) -> float:
    return sum(int(fields[i]) for i in idx) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(kind: str, argv: list[str], env: dict[str, str], service: int | None) -> Timed:
    """Run ``argv``: its wall time; its CPU with the children it reaped (wait4's rusage, to the
    microsecond), and theirs alone (/proc/PID/stat of the exited child before it is reaped, in
    clock ticks): its own is the difference."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        svc0 = tree_cpu(service) if service else 0.0
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(CMD_TIMEOUT_S, proc.kill)
        killer.start()
        try:
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            took = time.perf_counter() - t0
            stat = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            svc = tree_cpu(service) - svc0 if service else None
        finally:
            killer.cancel()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code != 0:
            text = err.read().decode(errors="replace")[-500:]
            raise RuntimeError(f"{' '.join(argv)} exited {code}: {text}")
        children = _clk(stat, 13, 14)
        total = (usage.ru_utime + usage.ru_stime) * 1000
        return Timed(
            kind,
            took,
            own_cpu_ms=max(0.0, total - children),
            children_cpu_ms=children,
            service_cpu_ms=svc * 1000 if svc is not None else None,
            stdout=out.read().decode(errors="replace")[-2000:],
        )


def _sse_argv(coatcheck: str, ca_file: Path, port: int) -> list[str]:
    url = f"https://{NAME}:{port}/sse?hold_ms=20"
    return [coatcheck, "run", "--allow", NAME, "--resolve", f"{NAME}:127.0.0.1",
            "--upstream-ca", str(ca_file), "--",
            "curl", "-sS", "-N", "-o", "/dev/null", "--max-time", "30",
            "-w", "%{time_starttransfer}", url]  # fmt: skip


def run(
    tmp: Path, *, repeats: int, sse_repeats: int, deadline: float, ca_file: Path, sse_port: int
) -> dict[str, list[Timed]]:
    base = {k: v for k, v in os.environ.items() if k not in INHERITED}
    base.pop("COATCHECK_VAULT_KEY_FILE", None)

    def env_for(name: str) -> dict[str, str]:
        home = tmp / f"startup-{name}"
        return {**base, "COATCHECK_HOME": str(home), "COATCHECK_VAULT_KEY_FILE": str(home / "key")}

    cold_env, warm_env = env_for("cold"), env_for("warm")
    warm_paths = ProxyPaths.for_home(Path(warm_env["COATCHECK_HOME"]))
    coatcheck = str(VENV_BIN / "coatcheck")
    cmds = {
        "bare": (["docker", "run", "--rm", IMAGE, "true"], base),
        "warm": ([coatcheck, "run", "--", "true"], warm_env),
        "cold": ([coatcheck, "run", "--", "true"], cold_env),
    }
    sse_cmd = _sse_argv(coatcheck, ca_file, sse_port)
    out: dict[str, list[Timed]] = {k: [] for k in (*KINDS, "sse-warm", "sse-cold")}
    service = None
    try:
        t0 = time.perf_counter()
        quiet = subprocess.DEVNULL
        service = subprocess.Popen(
            [coatcheck, "proxy"], env=warm_env, stdin=quiet, stdout=quiet, stderr=quiet
        )

        def answers() -> bool:
            if service.poll() is not None:
                raise RuntimeError("`coatcheck proxy` exited")
            return control.ping(warm_paths.control) is not None

        wait_for(answers, "coatcheck proxy", timeout=60)
        say(f"  `coatcheck proxy` answering after {time.perf_counter() - t0:.2f} s")
        pid = service.pid
        for kind, (argv, env) in cmds.items():  # unmeasured: CA creation, caches, zygote warm-up
            timed(kind, argv, env, None)
        for i in range(repeats):
            if i and time.monotonic() > deadline:
                say(f"  (stopping after {i} repeats: the bench's time budget)")
                break
            order = KINDS[i % 3 :] + KINDS[: i % 3]
            for kind in order:
                argv, env = cmds[kind]
                out[kind].append(timed(kind, argv, env, pid if kind == "warm" else None))
            say(f"    {i + 1}: " + "  ".join(_line(out[k][-1]) for k in KINDS))
        for i in range(sse_repeats):
            if i and time.monotonic() > deadline:
                break
            for kind, env in (("sse-warm", warm_env), ("sse-cold", cold_env)):
                out[kind].append(timed(kind, sse_cmd, env, pid if kind == "sse-warm" else None))
            say(
                "    first request in a run (curl time_starttransfer): "
                + "  ".join(
                    f"{k[4:]} {float(out[k][-1].stdout) * 1000:.0f} ms"
                    for k in ("sse-warm", "sse-cold")
                )
            )
        return out
    finally:
        stop(service)
        shutil.rmtree(warm_paths.sockets, ignore_errors=True)


def _line(t: Timed) -> str:
    svc = f" +svc {t.service_cpu_ms:.0f}" if t.service_cpu_ms is not None else ""
    return f"{t.kind} {t.seconds:.2f} s (CPU {t.own_cpu_ms:.0f}+{t.children_cpu_ms:.0f}{svc} ms)"


def summary(got: dict[str, list[Timed]]) -> dict[str, dict[str, object]]:
    res: dict[str, dict[str, object]] = {}
    for kind, ts in got.items():
        first = [float(t.stdout) * 1000 for t in ts] if kind.startswith("sse") else []
        res[kind] = {
            "seconds": median(t.seconds for t in ts),
            "own_cpu_ms": median(t.own_cpu_ms for t in ts),
            "children_cpu_ms": median(t.children_cpu_ms for t in ts),
            "service_cpu_ms": median(t.service_cpu_ms for t in ts),
            "first_byte_ms": median(first) if first else None,
            "n": len(ts),
            "samples": [asdict(t) for t in ts],
        }
    return res
