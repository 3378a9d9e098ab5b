"""Shared fixtures: an isolated environment for every test, a test CA, a local TLS upstream and
the real proxy service (session-wide; each test registers its own runs), and the Docker tier.

The Docker tier (tests marked ``docker``) needs a Docker engine and the sandbox image. Whether
both are there is checked once per session, and only when such tests were selected:

- neither there, ``COATCHECK_REQUIRE_DOCKER`` unset: each Docker test is skipped with the
  one-line reason, so the pure and proxy tiers pass on a machine without Docker;
- ``COATCHECK_REQUIRE_DOCKER=1`` (``make test``, CI): the run stops at once with that reason and
  a non-zero exit code, and a Docker test skipped for any other reason counts as a failure.
"""

from __future__ import annotations

import contextlib
import gc
import os
import ssl
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from core.errors import SecretNotFound
from tests.support.harness import ProxyHarness, Run, start_proxy
from tests.support.upstream import Upstream, new_tag, start_upstream
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
REQUIRE_DOCKER = "COATCHECK_REQUIRE_DOCKER"
SANDBOX_IMAGE = "coatcheck/sandbox:latest"
NO_ENGINE = "no Docker engine: start dockerd (`make docker`) or set DOCKER_HOST"


# -- the Docker tier ------------------------------------------------------------------------
def docker_required() -> bool:
    return os.environ.get(REQUIRE_DOCKER, "") not in ("", "0")


REQUIRE_BROWSER = "COATCHECK_REQUIRE_BROWSER"  # .ci/run: chromium is installed there
REQUIRE_CLAUDE_CODE = "COATCHECK_REQUIRE_CLAUDE_CODE"  # .ci/run sets it: CI builds the image
CLAUDE_CODE_NOT_BUILT = "coatcheck/claude-code:latest is not built"


def claude_code_required() -> bool:
    return os.environ.get(REQUIRE_CLAUDE_CODE, "") not in ("", "0")


def docker_problem() -> str | None:
    """Why the Docker tier can't run here (one line), or None when it can."""
    import docker
    import requests

    from core.errors import SandboxError
    from sandbox.docker import Sandboxes

    with warnings.catch_warnings():
        # docker-py leaves the socket of its failed API-version probe to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=15)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return f"{NO_ENGINE} ({_one_line(exc)})"
        finally:
            gc.collect()
    try:
        client.ping()
        Sandboxes(client).check_image(SANDBOX_IMAGE)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return f"{NO_ENGINE} ({_one_line(exc)})"
    except SandboxError as exc:
        return _one_line(exc)
    finally:
        client.close()
    return None


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@pytest.hookimpl(trylast=True)  # after -m/-k deselection: `-m "not docker"` never asks Docker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = [item for item in items if item.get_closest_marker("docker")]
    if not selected:
        return
    problem = docker_problem()
    if problem is None:
        return
    if docker_required():
        pytest.exit(
            f"{REQUIRE_DOCKER}=1, but the {len(selected)} Docker tests can't run: {problem}",
            returncode=pytest.ExitCode.TESTS_FAILED,
        )
    skip = pytest.mark.skip(reason=problem)
    for item in selected:
        item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With COATCHECK_REQUIRE_DOCKER=1, a skipped Docker test (a skip marker, a pytest.skip in
    a fixture or the test) is reported as a failure: the tier did not run, the run is red."""
    report = yield
    required = docker_required() and item.get_closest_marker("docker") is not None
    if required and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        if CLAUDE_CODE_NOT_BUILT in str(reason) and not claude_code_required():
            return report  # built on request only: its test may skip, except in CI
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_DOCKER}=1, but this Docker test was skipped: {reason}"
        return report
    browser = item.get_closest_marker("browser") is not None
    if browser and report.skipped and os.environ.get(REQUIRE_BROWSER, "") not in ("", "0"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_BROWSER}=1, but this browser test was skipped: {reason}"
    return report


@pytest.fixture(scope="session")
def docker_api() -> Iterator[Any]:
    """A client of the Docker engine (Docker-tier tests only)."""
    from tests.sandbox.helpers import docker_client

    with docker_client() as client:
        yield client


@pytest.fixture(scope="session")
def clients_test_image(docker_api: Any) -> str:
    """The test image of clients that ignore proxy variables (tests/support/clients_image.py);
    skipped (a failure under COATCHECK_REQUIRE_DOCKER) when a client can't be prepared."""
    from tests.support.clients_image import ClientsUnavailable, clients_image

    try:
        return clients_image(docker_api)
    except ClientsUnavailable as exc:
        pytest.skip(str(exc))


# -- every test -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in INHERITED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COATCHECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COATCHECK_VAULT_KEY_FILE", str(tmp_path / "vault.key"))


@pytest.fixture
def tag() -> str:
    """A tag for this test's own requests to the session-wide servers: put it in each request
    (``tagged(url, tag)``) and find them with ``received_with(server, tag)``."""
    return new_tag()


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


@contextlib.contextmanager
def vault_key_of(home: Path) -> Iterator[None]:
    """COATCHECK_VAULT_KEY_FILE names ``home``'s key while a test proxy starts (the service
    inherits it), and is restored afterwards."""
    old = os.environ.get("COATCHECK_VAULT_KEY_FILE")
    os.environ["COATCHECK_VAULT_KEY_FILE"] = str(home / "vault.key")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COATCHECK_VAULT_KEY_FILE", None)
        else:
            os.environ["COATCHECK_VAULT_KEY_FILE"] = old


@pytest.fixture(scope="session")
def proxy(proxy_home: Path, ca_file: Path, session_vault: Vault) -> Iterator[ProxyHarness]:
    sockets = Path(f"/tmp/cc-test-{os.getpid()}")
    for name in INHERITED:
        os.environ.pop(name, None)
    with vault_key_of(proxy_home):
        session_vault.list()
        harness = start_proxy(
            proxy_home,
            sockets,
            upstream_ca=ca_file,
            extra=tuple(f"--resolve={n}:127.0.0.1" for n in TEST_NAMES),
        )
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
