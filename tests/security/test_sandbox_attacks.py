"""Attacks from inside a real sandbox (``coatcheck run``, real Docker): the job holds only a
placeholder, has no way out but the proxy (no DNS, no direct IP, ``--noproxy`` gets nowhere),
and can't find the real value anywhere it can read. One sandbox run carries every probe
(tests/security/sandbox_probe.py) and prints a JSON report that the tests below examine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.paths import ProxyPaths
from sandbox import names
from tests.conftest import INHERITED
from tests.security.conftest import API, OTHER, new_canary
from tests.support.upstream import new_tag, received_with

PROBE = Path(__file__).with_name("sandbox_probe.py")

pytestmark = pytest.mark.docker


class SandboxRun:
    def __init__(
        self, canary: str, home: Path, proc: subprocess.CompletedProcess[bytes], tag: str
    ) -> None:
        self.canary = canary
        self.home = home
        self.proc = proc
        self.tag = tag
        text = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        self.report: dict[str, Any] = json.loads(text[-1]) if text else {}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, upstream, ca_file) -> SandboxRun:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("sandbox-attacks")
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    env.update(COATCHECK_HOME=str(home), COATCHECK_VAULT_KEY_FILE=str(base / "vault.key"))
    canary = new_canary()
    cli = [sys.executable, "-m", "runner.cli"]
    subprocess.run(
        [*cli, "vault", "set", "SBX_TOKEN", "--domains", API],
        input=canary.encode() + b"\n",
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    tag = new_tag()
    proc = subprocess.run(
        [
            *cli,
            "run",
            "--secret",
            "SBX_TOKEN",
            "--allow",
            OTHER,
            "--on-leak",
            "block",
            "--resolve",
            f"{API}:127.0.0.1",
            "--resolve",
            f"{OTHER}:127.0.0.1",
            "--upstream-ca",
            str(ca_file),
            "--timeout",
            "120",
            "--log-json",
            "--",
            "python3",
            "-c",
            PROBE.read_text(),
            API,
            str(upstream.port),
            OTHER,
            tag,
        ],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")[-2000:]
    return SandboxRun(canary, home, proc, tag)


def test_sandbox_env_holds_only_the_placeholder(sandbox):
    report = sandbox.report
    assert report["placeholder"].startswith("ccph_")
    assert report["uid"] != 0
    assert sandbox.canary not in json.dumps(report["env"])


def test_sandbox_cannot_read_the_value_from_proc_or_files(sandbox):
    """/proc/*/environ and cmdline of every visible process, and every readable file under
    /run, /etc/coatcheck, /home, /tmp, /work: no real value (the placeholder, yes)."""
    dump = sandbox.report["dump"]
    assert sandbox.report["placeholder"] in dump  # the probe did read its own environment
    assert sandbox.canary not in dump


@pytest.mark.parametrize(
    "name", ["{ph}.outside.example", "outside.example", API, "host.docker.internal"]
)
def test_sandbox_dns_exfiltration_fails(sandbox, name):
    """No query leaves the sandbox: its init answers every name itself (issue 12, clients that
    ignore proxy variables) with a loopback address of its pool, and there is no interface but
    lo to send a query on. So a lookup fails or yields the pool's addresses, nothing else."""
    key = name.format(ph=sandbox.report["placeholder"])
    got = sandbox.report["dns"][key]
    addresses = set(re.findall(r"'(\d+\.\d+\.\d+\.\d+|[0-9a-f:]*:[0-9a-f:]*)'", got))
    assert got.startswith("error") or (
        addresses and all(a.startswith(names.POOL) for a in addresses)
    ), got


def test_sandbox_direct_ip_connections_fail(sandbox, upstream):
    direct = sandbox.report["direct"]
    assert direct and all(v.startswith("error") for v in direct.values()), direct
    assert sandbox.report["udp_dns"].startswith("error"), sandbox.report["udp_dns"]


def test_sandbox_noproxy_gets_nowhere(sandbox, upstream):
    noproxy = sandbox.report["noproxy"]
    assert noproxy["code"] != 0 and "HTTP/" not in noproxy["out"], noproxy


def test_sandbox_request_through_the_proxy_is_injected_and_scrubbed(sandbox, upstream):
    via = sandbox.report["via_proxy"]
    assert via["code"] == 0, via
    echo = json.loads(via["out"].replace("\r\n", "\n").split("\n\n")[-1])
    headers = {k.lower(): v for k, v in echo["headers"].items()}
    assert headers["authorization"] == f"Bearer {sandbox.report['placeholder']}"
    carrying = [
        r for r in received_with(upstream, sandbox.tag) if sandbox.canary.encode() in r.raw()
    ]
    assert [r.header("Host") for r in carrying] == [f"{API}:{upstream.port}"]


def test_sandbox_placeholder_to_another_host_is_blocked(sandbox, upstream):
    leak = sandbox.report["leak"]
    statuses = [line for line in leak["out"].splitlines() if line.startswith("HTTP/")]
    assert statuses[-1].split()[1] == "403", statuses
    assert "x-coatcheck-reason: placeholder_leak" in leak["out"].lower()
    got = received_with(upstream, sandbox.tag)
    assert not [r for r in got if (r.header("Host") or "").startswith(OTHER)], got


def test_sandbox_run_socket_is_not_the_control_socket(sandbox):
    reply = sandbox.report["run_socket_as_control"]
    assert '"ok"' not in reply and "runs" not in reply, reply
    assert sandbox.report["run_dir"] == "ok: ['proxy.sock']", sandbox.report["run_dir"]


def test_run_output_and_audit_log_hold_no_value(sandbox):
    canary = sandbox.canary.encode()
    assert canary not in sandbox.proc.stdout and canary not in sandbox.proc.stderr
    audit = ProxyPaths.for_home(sandbox.home).audit_log
    logs = audit.read_bytes() if audit.exists() else b""
    assert b"placeholder_leak" in logs, "the ephemeral proxy wrote no audit trail"
    for path in sandbox.home.rglob("*"):
        if path.is_file() and path.name != "vault.json":
            assert canary not in path.read_bytes(), path
