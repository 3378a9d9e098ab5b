"""An opaque host from a real sandbox (``allow_opaque`` in a job file, and ``--allow-opaque``):
curl downloads from a local TLS upstream through the proxy without interception, trusting the
upstream's own CA (a test CA, not a public one: the job writes it from an env variable; the
sandbox's CA variables name the proxy's CA and the public ones); a secret's host next to it is
still intercepted and injected."""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import Home, Result, coatcheck, vault_set
from tests.security.pressure import wait_for
from tests.support.upstream import Upstream, received_with

pytestmark = pytest.mark.docker

API = "api.coatcheck.test"
OTHER = "other.coatcheck.test"
SIZE = 5 * 1024 * 1024 + 3


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("opaque-run"))


@pytest.fixture(scope="module")
def token(home: Home) -> str:
    value = "sk-opaque-" + secrets.token_hex(16)
    vault_set(home, "T", value, OTHER)
    return value


@dataclass(frozen=True)
class Ran:
    result: Result
    mark: str
    lines: list[dict[str, Any]]


def _script(port: int, mark: str) -> str:
    return (
        'printf "%s\\n" "$UPSTREAM_CA_PEM" > /tmp/upstream-ca.pem; '
        f"curl -sS --cacert /tmp/upstream-ca.pem -o /dev/null "
        f"-w 'opaque=%{{http_code}} %{{size_download}}\\n' "
        f"'https://{API}:{port}/big?size={SIZE}&op={mark}'; "
        f"curl -sS -o /dev/null 'https://{API}:{port}/echo?noca={mark}' 2>/dev/null "
        "|| echo opaque-not-intercepted; "
        f"curl -sS -o /dev/null -w 'intercepted=%{{http_code}}\\n' -H \"Authorization: Bearer $T\" "
        f"'https://{OTHER}:{port}/echo?inj={mark}'; "
        'echo "cas=$(grep -c "BEGIN CERTIFICATE" "$SSL_CERT_FILE")"'
    )


@pytest.fixture(scope="module")
def ran(
    home: Home,
    token: str,
    upstream: Upstream,
    ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Ran:
    jobs = tmp_path_factory.mktemp("opaque-jobs")
    shutil.copy(ca_file, jobs / "upstream-ca.pem")
    mark = secrets.token_hex(8)
    job = jobs / "opaque.toml"
    job.write_text(
        f"""name = "opaque"
timeout = "2m"
secrets = ["T"]
allow_opaque = ["{API}"]
resolve = ["{API}:127.0.0.1", "{OTHER}:127.0.0.1"]
upstream_ca = ["upstream-ca.pem"]
env = {{ UPSTREAM_CA_PEM = {json.dumps(ca_file.read_text())} }}
command = ["sh", "-c", {json.dumps(_script(upstream.port, mark))}]
"""
    )
    check = coatcheck(home, "check", str(job))
    assert check.code == 0, str(check)
    r = coatcheck(home, "run", str(job))

    def opaque_lines() -> list[dict[str, Any]]:
        text = home.audit_log.read_text() if home.audit_log.exists() else ""
        lines = [json.loads(x) for x in text.splitlines() if x]
        return [e for e in lines if e.get("host") == API and e.get("method") == "CONNECT"]

    wait_for("two opaque audit lines", lambda: len(opaque_lines()) >= 2)
    return Ran(r, mark, opaque_lines())


def test_the_job_downloads_through_the_opaque_host(ran: Ran) -> None:
    assert ran.result.code == 0, str(ran.result)
    lines = ran.result.stdout.splitlines()
    assert lines[:3] == [f"opaque=200 {SIZE}", "opaque-not-intercepted", "intercepted=200"], str(
        ran.result
    )


def test_the_sandbox_trusts_the_public_cas_besides_the_proxy(ran: Ran) -> None:
    """With opaque hosts a registry's real certificate must verify in the sandbox: its CA
    variables name the proxy's CA and the public ones (certifi's)."""
    [count] = [line for line in ran.result.stdout.splitlines() if line.startswith("cas=")]
    assert int(count.removeprefix("cas=")) > 50


def test_the_upstream_got_the_opaque_request_and_never_the_untrusting_one(
    ran: Ran, upstream: Upstream
) -> None:
    assert len(received_with(upstream, f"op={ran.mark}")) == 1
    assert received_with(upstream, f"noca={ran.mark}") == []


def test_the_secret_host_next_to_it_is_injected(ran: Ran, upstream: Upstream, token: str) -> None:
    [got] = received_with(upstream, f"inj={ran.mark}")
    assert got.header("Authorization") == f"Bearer {token}"


def test_each_opaque_tunnel_has_one_audit_line_with_its_bytes(ran: Ran, upstream: Upstream) -> None:
    download, refused = ran.lines
    assert download["reason"] == "opaque" and download["decision"] == "allow"
    assert download["port"] == upstream.port and download["address"] == "127.0.0.1"
    assert isinstance(download["bytes_down"], int) and download["bytes_down"] > SIZE
    # the client that trusted only the proxy's CA gave up in its handshake: few bytes, no request
    assert refused["reason"] == "opaque"
    assert isinstance(refused["bytes_down"], int) and refused["bytes_down"] < 64 * 1024


def test_allow_opaque_flag_over_a_secret_domain_is_refused(home: Home, token: str) -> None:
    r = coatcheck(home, "run", "--secret", "T", "--allow-opaque", "*.coatcheck.test", "--", "true")
    assert r.code != 0, str(r)
    assert "opaque hosts get no secret" in r.stderr and OTHER in r.stderr, str(r)
