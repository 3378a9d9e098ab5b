"""A service stopped while its runs hold keep-alive connections (some just closed) prints its
own lines and nothing else: no traceback, no asyncio "Exception in callback" for the
connections' cancelled tasks."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from core.pids import wait_or_kill
from tests.conftest import TEST_NAMES, client_for, vault_key_of
from tests.support.harness import start_proxy
from tests.support.upstream import Upstream, tagged
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

RUNS = 6
NOISE = ("Traceback", "Exception in callback", "ERROR", "Task was destroyed")


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "coordinator"])
def test_a_stop_with_open_connections_prints_no_error(
    tmp_path: Path, ca_file: Path, upstream: Upstream, tag: str, workers: int
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    Vault.open(home, keystore=FileKeystore(home / "vault.key")).set(
        "STOP_TOKEN", SecretValue("stop-" + "s" * 24), ["api.coatcheck.test"]
    )
    err = tmp_path / "service.err"
    with vault_key_of(home):
        proxy = start_proxy(
            home,
            Path(f"/tmp/cc-stop-{os.getpid()}-{workers}"),
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={name}:127.0.0.1" for name in TEST_NAMES),
            stderr=err,
            workers=workers,
        )
    clients: list[httpx.Client] = []
    try:
        for _ in range(RUNS):
            run = proxy.register(("STOP_TOKEN",))
            c = client_for(run, proxy.ca_cert)
            clients.append(c)
            url = tagged(f"https://api.coatcheck.test:{upstream.port}/echo", tag)
            for _ in range(3):
                auth = {"Authorization": f"Bearer {run.placeholders['STOP_TOKEN']}"}
                assert c.get(url, headers=auth).status_code == 200
        for c in clients[: RUNS // 2]:  # these close as the service stops; the rest stay open
            c.close()
        proxy.proc.terminate()
        wait_or_kill(proxy.proc, timeout=30)
    finally:
        for c in clients:
            c.close()
        proxy.close()
    text = err.read_text(errors="replace")
    assert "ready" in text
    assert not [line for line in text.splitlines() if any(n in line for n in NOISE)], text
