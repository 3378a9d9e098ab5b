"""The warm path: with ``coatcheck proxy`` running, ``coatcheck run`` registers with that shared
service instead of starting an ephemeral proxy, and works the same."""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy import control
from proxy.paths import ProxyPaths
from tests.sandbox.helpers import COATCHECK, Home, Result, coatcheck, vault_set
from tests.support.upstream import Upstream

pytestmark = pytest.mark.docker

API = "api.coatcheck.test"


@dataclass
class Warm:
    token: str
    mark: str
    plain: Result
    with_secret: Result
    runs_while_up: int
    service_exit: int
    control_left: bool
    service_log: str


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
         ca_file: Path) -> Iterator[Warm]:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("warm"))
    token = "sk-warm-" + secrets.token_hex(16)
    vault_set(home, "T", token, API)
    sock = ProxyPaths.for_home(home.path).control
    log_path = home.root / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen((*COATCHECK, "proxy"), env=home.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while control.ping(sock) is None:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "coatcheck proxy never answered"
                time.sleep(0.1)
            plain = coatcheck(home, "run", "--log-json", "--", "true")
            mark = secrets.token_hex(6)
            with_secret = coatcheck(
                home, "run", "--log-json", "--secret", "T", "--resolve", f"{API}:127.0.0.1",
                "--upstream-ca", str(ca_file), "--", "sh", "-c",
                f'curl -sS -H "Authorization: Bearer $T" https://{API}:{upstream.port}/echo?w={mark}',
            )  # fmt: skip
            runs = int((control.ping(sock) or {}).get("runs", -1))
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
    yield Warm(token, mark, plain, with_secret, runs, code, sock.exists(), log_path.read_text())


def test_warm_run_uses_the_shared_proxy(warm: Warm) -> None:
    assert warm.plain.code == 0, str(warm.plain)
    assert warm.plain.log_line()["proxy"] == "shared"


def test_warm_run_injects_the_secret_through_the_shared_proxy(
    warm: Warm, upstream: Upstream
) -> None:
    r = warm.with_secret
    assert r.code == 0, str(r)
    assert r.log_line()["proxy"] == "shared"
    [got] = [x for x in upstream.received if x.path.endswith(f"?w={warm.mark}")]
    assert got.header("Authorization") == f"Bearer {warm.token}"
    assert warm.token not in r.stdout and "Bearer ccph_" in r.stdout


def test_warm_runs_unregister_from_the_shared_proxy(warm: Warm) -> None:
    assert warm.runs_while_up == 0


def test_shared_proxy_stops_cleanly_on_sigterm(warm: Warm) -> None:
    assert warm.service_exit == 0, warm.service_log
    assert not warm.control_left
