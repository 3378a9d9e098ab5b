"""security.md, "what we protect": a real secret value is in the vault, the proxy's memory and on
the wire to its allowlisted upstream, and nowhere a sandbox (or ``docker inspect``) can see.

A secret with a distinctive canary value is vaulted through the CLI. One sandbox dumps its
environment, every /proc/*/environ and cmdline, searches every readable file, and calls an
upstream that echoes the Authorization header back (in a JSON body and in response headers),
while the host runs ``docker inspect`` on it. Each test asserts where the value went, and where
it did not.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.placeholders import is_opaque
from tests.sandbox.helpers import (
    RELEASE_FILE,
    Home,
    Result,
    inspected_run,
    probe_command,
    vault_set,
)
from tests.support.upstream import Received, Upstream

pytestmark = pytest.mark.docker

PREFIX = "cc-real-canary-"  # searched for in every file of the sandbox; the value is longer
NAME = "T"


@dataclass
class Exposure:
    home: Home
    value: str
    mark: str
    result: Result
    probe: dict[str, Any]
    inspect: dict[str, Any]
    upstream: Upstream

    @property
    def placeholder(self) -> str:
        return str(self.probe["placeholder"])

    def received(self, query: str) -> Received:
        got = [r for r in self.upstream.received if r.path.endswith(f"?{query}={self.mark}")]
        assert len(got) == 1, [r.path for r in self.upstream.received]
        return got[0]


@pytest.fixture(scope="module")
def exp(tmp_path_factory: pytest.TempPathFactory, docker_api: Any, upstream: Upstream,
        ca_file: Path) -> Exposure:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("exposure"))
    value = PREFIX + secrets.token_hex(16)
    vault_set(home, NAME, value, "api.coatcheck.test")
    mark = secrets.token_hex(6)
    arg = {"name": NAME, "url": f"https://api.coatcheck.test:{upstream.port}", "prefix": PREFIX,
           "mark": mark, "release": RELEASE_FILE}  # fmt: skip
    inspect, result = inspected_run(
        home, docker_api, "--secret", NAME, "--resolve", "api.coatcheck.test:127.0.0.1",
        "--upstream-ca", str(ca_file), "--log-json", "--", *probe_command("secrets", arg),
    )  # fmt: skip
    return Exposure(home, value, mark, result, result.probe(), inspect, upstream)


def _auth(echo_body: str) -> str:
    """The Authorization header in the upstream's /echo JSON (header names in any case)."""
    headers = json.loads(echo_body)["headers"]
    return next(v for k, v in headers.items() if k.lower() == "authorization")


def test_probe_ran_and_exited_zero(exp: Exposure) -> None:
    assert exp.result.code == 0, str(exp.result)
    assert exp.probe["released"], "the probe ended before the host had inspected its container"


def test_sandbox_env_holds_a_placeholder_not_the_value(exp: Exposure) -> None:
    assert is_opaque(exp.placeholder), exp.placeholder
    assert exp.probe["env"][NAME] == exp.placeholder
    assert exp.value not in json.dumps(exp.probe["env"])


def test_no_process_environ_or_cmdline_holds_the_value(exp: Exposure) -> None:
    procs = exp.probe["processes"]
    environs = [p["environ"] for p in procs.values() if p["environ"]]
    assert len(environs) >= 2, procs  # init and the probe at least: the dump really read them
    assert all(f"{NAME}={exp.placeholder}" in e for e in environs)
    assert exp.value not in json.dumps(procs)
    assert PREFIX not in "".join(environs)


def test_no_file_in_the_sandbox_holds_the_value(exp: Exposure) -> None:
    assert exp.probe["files_with_prefix"] == []


def test_docker_inspect_never_shows_the_value(exp: Exposure) -> None:
    whole = json.dumps(exp.inspect)
    assert f"{NAME}={exp.placeholder}" in exp.inspect["Config"]["Env"]
    assert exp.value not in whole


def test_upstream_received_the_real_value(exp: Exposure) -> None:
    assert exp.received("m").header("Authorization") == f"Bearer {exp.value}"
    assert exp.received("u").header("Authorization") == f"Bearer {exp.value}"


def test_upstream_received_basic_auth_with_the_real_value(exp: Exposure) -> None:
    scheme, _, b64 = (exp.received("b").header("Authorization") or "").partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(b64).decode() == f"user:{exp.value}"


def test_upstream_never_saw_the_placeholder(exp: Exposure) -> None:
    for query in ("m", "u", "b", "h"):
        assert exp.placeholder.encode() not in exp.received(query).raw()


def test_json_echo_of_the_value_comes_back_as_the_placeholder(exp: Exposure) -> None:
    curl = exp.probe["curl_echo"]
    assert curl["rc"] == 0, curl
    assert _auth(curl["stdout"]) == f"Bearer {exp.placeholder}"
    assert _auth(exp.probe["urllib_echo"]["body"]) == f"Bearer {exp.placeholder}"


def test_basic_auth_echo_does_not_reveal_the_value(exp: Exposure) -> None:
    echoed = _auth(exp.probe["basic_echo"]["body"])
    assert echoed.startswith("Basic ")
    b64 = echoed[6:]
    # The scrubbed base64 is the placeholder's (another length): decode what is whole.
    decoded = base64.b64decode(b64[: len(b64) // 4 * 4])
    assert exp.value.encode() not in decoded
    assert exp.value[len(PREFIX) :].encode() not in decoded
    assert exp.placeholder[1:-1].encode() in decoded


def test_header_echo_of_the_value_comes_back_as_the_placeholder(exp: Exposure) -> None:
    out = exp.probe["curl_echo_header"]["stdout"]
    assert re.search(rf"(?im)^x-echo: Bearer {exp.placeholder}\r?$", out), out
    assert re.search(rf"(?im)^set-cookie: t=Bearer {exp.placeholder}\r?$", out), out
    assert exp.value not in out


def test_command_stdout_never_contains_the_value(exp: Exposure) -> None:
    assert exp.placeholder in exp.result.stdout  # the echoes did come back
    assert exp.value not in exp.result.stdout


def test_run_stderr_and_log_json_never_contain_the_value(exp: Exposure) -> None:
    line = exp.result.log_line()
    assert line["secrets"] == [NAME] and line["exit_code"] == 0
    assert exp.value not in exp.result.stderr
    assert PREFIX not in exp.result.stderr


def test_audit_log_never_contains_the_value(exp: Exposure) -> None:
    text = exp.home.audit_log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line]
    injected = [e for e in lines if e.get("secrets_injected") == [NAME]]
    assert len(injected) >= 4, lines  # the log is real: it recorded the injections
    assert exp.value not in text
    assert exp.placeholder not in text
