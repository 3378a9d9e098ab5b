"""Shared fixtures: an isolated environment for every test, a test CA, a local TLS upstream and
the real proxy service (session-wide; each test registers its own runs)."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from core.errors import SecretNotFound
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import Upstream, start_upstream
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

INHERITED = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
    "all_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "PIP_CERT",
)  # fmt: skip
TEST_NAMES = (
    "api.coatcheck.test",
    "other.coatcheck.test",
    "evil.test",
    "api.coatcheck.test.evil.test",
)


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in INHERITED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COATCHECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COATCHECK_VAULT_KEY_FILE", str(tmp_path / "vault.key"))


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory: pytest.TempPathFactory, test_ca: trustme.CA) -> Path:
    path = tmp_path_factory.mktemp("ca") / "upstream-ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def upstream(test_ca: trustme.CA) -> Iterator[Upstream]:
    up = start_upstream(test_ca, TEST_NAMES)
    yield up
    up.close()


@pytest.fixture(scope="session")
def proxy_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxyhome")


@pytest.fixture(scope="session")
def session_vault(proxy_home: Path) -> Vault:
    return Vault.open(proxy_home, keystore=FileKeystore(proxy_home / "vault.key"))


@pytest.fixture(scope="session")
def proxy(proxy_home: Path, ca_file: Path, session_vault: Vault) -> Iterator[ProxyHarness]:
    sockets = Path(f"/tmp/cc-test-{os.getpid()}")
    old = os.environ.get("COATCHECK_VAULT_KEY_FILE")
    os.environ["COATCHECK_VAULT_KEY_FILE"] = str(proxy_home / "vault.key")
    for name in INHERITED:
        os.environ.pop(name, None)
    try:
        session_vault.list()
        harness = start_proxy(
            proxy_home,
            sockets,
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES),
        )
    finally:
        if old is None:
            os.environ.pop("COATCHECK_VAULT_KEY_FILE", None)
        else:
            os.environ["COATCHECK_VAULT_KEY_FILE"] = old
    yield harness
    harness.close()


@pytest.fixture
def vault_secret(session_vault: Vault):  # type: ignore[no-untyped-def]
    """Store a secret in the session proxy's vault: ``vault_secret(NAME, VALUE, [domains])``."""
    made: list[str] = []

    def store(name: str, value: str, domains: list[str] | None = None, **kw: object) -> str:
        session_vault.set(name, SecretValue(value), domains or ["api.coatcheck.test"], **kw)
        made.append(name)
        return name

    yield store
    for name in made:
        with contextlib.suppress(SecretNotFound):
            session_vault.remove(name)


def client_for(run: Run, ca_cert: Path, *, http2: bool = False) -> httpx.Client:
    """An HTTP client that reaches the proxy exactly as a sandbox does."""
    ctx = ssl.create_default_context(cafile=str(ca_cert))
    return httpx.Client(proxy=run.proxy_url, verify=ctx, http2=http2, timeout=15, trust_env=False)
