"""``coatcheck run`` end to end: every flag against the real Docker engine and the real proxy,
with a local TLS upstream (trustme) standing in for the outside world.

Where several facts come from one sandbox, a module fixture runs it once and named tests assert
one fact each.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import (
    COATCHECK,
    Home,
    Result,
    coatcheck,
    finish,
    probe_command,
    sandboxes_of,
    start_coatcheck,
    stop,
    vault_set,
)
from tests.support.upstream import Hold, Received, Upstream, received_with

pytestmark = pytest.mark.docker

API = "api.coatcheck.test"
OTHER = "other.coatcheck.test"
EVIL = "evil.test"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("run-cli"))


@pytest.fixture(scope="module")
def token(home: Home) -> str:
    """The real value of secret T (for api.coatcheck.test only)."""
    value = "sk-cli-" + secrets.token_hex(16)
    vault_set(home, "T", value, API)
    return value


def received(upstream: Upstream, query: str) -> list[Received]:
    """The requests whose path ends with ``query`` (which holds a mark of this module's)."""
    return [r for r in received_with(upstream, query) if r.path.endswith(query)]


def echoed_auth(body: str) -> str | None:
    headers = json.loads(body)["headers"]
    return next((v for k, v in headers.items() if k.lower() == "authorization"), None)


# -- exit codes and output streams -----------------------------------------------------------
@dataclass
class Streamed:
    result: Result
    first_line: str
    running_at_first_line: bool
    hold: Hold


@pytest.fixture(scope="module")
def streamed(home: Home, upstream: Upstream, ca_file: Path) -> Streamed:
    """A command that prints a line, then blocks on the upstream's hold (through the proxy)
    until this fixture has read that line and releases it; then prints more and exits 7."""
    hold = upstream.hold()
    url = f"https://{API}:{upstream.port}/hold?hold={hold.id}"
    script = f"echo out-1; echo err-1 >&2; curl -sS -o /dev/null {url}; echo out-2; exit 7"
    started = time.monotonic()
    proc = start_coatcheck(home, "run", "--log-json", "--allow", API,
                           "--resolve", f"{API}:127.0.0.1", "--upstream-ca", str(ca_file),
                           "--", "sh", "-c", script)  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode()
        running = proc.poll() is None
        hold.release()
        result = finish(proc, started)
    finally:
        hold.release()
        stop(proc)
    rest = Result(result.argv, result.code, first + result.stdout, result.stderr, result.seconds)
    return Streamed(rest, first, running, hold)


def test_exit_code_of_the_command_is_passed_through(streamed: Streamed) -> None:
    assert streamed.result.code == 7, str(streamed.result)


def test_stdout_is_streamed_while_the_command_runs(streamed: Streamed) -> None:
    # The command could not end before the hold was released, which came after the first line.
    assert streamed.first_line == "out-1\n"
    assert streamed.hold.reached.is_set(), "the command never waited on the hold"
    assert not streamed.hold.gave_up, "the first line came only after the command ended"
    assert streamed.running_at_first_line


def test_stdout_and_stderr_stay_separate(streamed: Streamed) -> None:
    assert streamed.result.stdout == "out-1\nout-2\n"
    assert streamed.result.stderr.startswith("err-1\n"), streamed.result.stderr
    assert "out-" not in streamed.result.stderr


def test_log_json_reports_the_run_with_an_ephemeral_proxy(streamed: Streamed) -> None:
    line = streamed.result.log_line()
    assert line["proxy"] == "ephemeral"
    assert line["exit_code"] == 7
    assert re.fullmatch(r"r-[0-9a-f]{16}", line["run_id"])


def test_command_not_found_exits_127(home: Home) -> None:
    r = coatcheck(home, "run", "--", "no-such-command-xyz")
    assert r.code == 127, str(r)
    assert "no-such-command-xyz" in r.stderr


# -- timeout ---------------------------------------------------------------------------------
def test_timeout_stops_the_command_with_124_and_removes_the_sandbox(
    home: Home, docker_api: Any
) -> None:
    started = time.monotonic()
    proc = start_coatcheck(home, "run", "--timeout", "1", "--", "sh", "-c",
                           "sleep 600; echo finished")  # fmt: skip
    try:
        r = finish(proc, started, timeout=120)  # a command that is never stopped fails here
        assert r.code == 124, str(r)
        assert "finished" not in r.stdout, str(r)
        assert sandboxes_of(docker_api, proc.pid) == []
    finally:
        stop(proc)
        for c in sandboxes_of(docker_api, proc.pid):
            c.remove(force=True)


# -- set-up failures -------------------------------------------------------------------------
def test_missing_image_exits_125_and_names_the_build_command(home: Home) -> None:
    r = coatcheck(home, "run", "--image", "no/such:image", "--", "true")
    assert r.code == 125, str(r)
    assert r.stderr.startswith("coatcheck: error:"), r.stderr
    assert "no/such:image" in r.stderr and "`coatcheck images build`" in r.stderr


def test_no_docker_engine_exits_125_and_says_how_to_start_one(home: Home) -> None:
    env = dict(home.env, DOCKER_HOST=f"unix://{home.root}/no-docker.sock")
    p = subprocess.run([*COATCHECK, "run", "--", "true"], env=env, capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert p.returncode == 125, p.stderr
    assert p.stderr.startswith("coatcheck: error:") and "Docker engine" in p.stderr
    assert "dockerd" in p.stderr


def test_unknown_secret_exits_125_with_the_command_that_fixes_it(home: Home) -> None:
    r = coatcheck(home, "run", "--secret", "NO_SUCH_SECRET", "--", "true")
    assert r.code == 125, str(r)
    assert r.stderr.startswith("coatcheck: error:"), r.stderr
    assert "coatcheck vault set NO_SUCH_SECRET --domains" in r.stderr


@pytest.mark.parametrize(
    ("flag", "value", "fix"),
    [
        ("--resolve", "api.coatcheck.test:not-an-ip", "use HOST:ADDR"),
        ("--allow", "*", '"*.example.com"'),
        ("--allow-cidr", "not-a-cidr", "not an address range"),
        ("--allow-cidr", "0.0.0.0/0", "would allow every address"),
    ],
    ids=["resolve-not-an-ip", "allow-star", "cidr-garbage", "cidr-everything"],
)
def test_invalid_policy_flag_fails_even_when_the_command_is_quick(
    home: Home, flag: str, value: str, fix: str
) -> None:
    # `true` ends at once: the run must not report success before its policy was accepted.
    r = coatcheck(home, "run", flag, value, "--", "true")
    assert r.code in (2, 125), str(r)
    assert r.stderr.startswith("coatcheck: error:") and fix in r.stderr, str(r)


# -- --env ------------------------------------------------------------------------------------
def test_env_values_are_visible_inside(home: Home) -> None:
    r = coatcheck(home, "run", "--env", "GREETING=hello-sandbox", "--env", "SPACED=a b=c", "--",
                  "sh", "-c", 'printf "%s|%s\\n" "$GREETING" "$SPACED"')  # fmt: skip
    assert r.code == 0, str(r)
    assert r.stdout == "hello-sandbox|a b=c\n"


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "SSL_CERT_FILE"])
def test_env_may_not_override_proxy_or_trust_settings(home: Home, name: str) -> None:
    r = coatcheck(home, "run", "--env", f"{name}=http://exfil.invalid:1", "--", "true")
    assert r.code == 2, str(r)
    assert r.stderr.startswith("coatcheck: error:") and name in r.stderr


# -- through the proxy: curl, python, git, --allow, refusals ---------------------------------
@dataclass
class Tools:
    result: Result
    probe: dict[str, Any]
    mark: str


@pytest.fixture(scope="module")
def tools(home: Home, token: str, upstream: Upstream, ca_file: Path) -> Tools:
    mark = secrets.token_hex(6)
    arg = {"name": "T", "port": upstream.port, "mark": mark}
    r = coatcheck(home, "run", "--log-json", "--secret", "T", "--allow", OTHER,
                  *(f"--resolve={h}:127.0.0.1" for h in (API, OTHER, EVIL)),
                  "--upstream-ca", str(ca_file), "--", *probe_command("tools", arg))  # fmt: skip
    return Tools(r, r.probe(), mark)


def test_tools_probe_ran_and_exited_zero(tools: Tools) -> None:
    assert tools.result.code == 0, str(tools.result)


def test_resolve_and_upstream_ca_let_curl_reach_the_upstream_with_the_secret(
    tools: Tools, upstream: Upstream, token: str
) -> None:
    curl = tools.probe["curl"]
    assert curl["rc"] == 0, curl
    assert echoed_auth(curl["stdout"]) == f"Bearer {tools.probe['placeholder']}"
    [got] = received(upstream, f"?curl={tools.mark}")
    assert got.header("Authorization") == f"Bearer {token}"


def test_python_urllib_works_through_the_proxy(
    tools: Tools, upstream: Upstream, token: str
) -> None:
    got = tools.probe["urllib"]
    assert got["status"] == 200, got
    assert echoed_auth(got["body"]) == f"Bearer {tools.probe['placeholder']}"
    [req] = received(upstream, f"?urllib={tools.mark}")
    assert req.header("Authorization") == f"Bearer {token}"
    assert (req.header("User-Agent") or "").startswith("Python-urllib/")


def test_allow_lets_a_request_through_without_injection(
    tools: Tools, upstream: Upstream, token: str
) -> None:
    got = tools.probe["allowed_other"]
    assert got["status"] == 200, got
    [req] = received(upstream, f"?allow={tools.mark}")
    assert req.header("Host") == f"{OTHER}:{upstream.port}"
    assert req.header("Authorization") == f"Bearer {tools.probe['placeholder']}"
    assert token.encode() not in req.raw()


def test_placeholder_sent_to_another_allowed_host_is_logged_as_a_leak(
    tools: Tools, home: Home
) -> None:
    run_id = tools.result.log_line()["run_id"]
    lines = [json.loads(x) for x in home.audit_log.read_text().splitlines() if x]
    leaks = [e for e in lines if e["event"] == "placeholder_leak" and e["run_id"] == run_id]
    assert [(e["host"], e["leaked_placeholders"]) for e in leaks] == [(OTHER, ["T"])], lines
    assert tools.probe["placeholder"] not in home.audit_log.read_text()


def test_on_leak_block_refuses_a_placeholder_on_its_way_to_another_host(
    home: Home, token: str, upstream: Upstream, ca_file: Path
) -> None:
    mark = secrets.token_hex(6)
    url = f"https://{OTHER}:{upstream.port}/echo?block={mark}"
    r = coatcheck(home, "run", "--secret", "T", "--allow", OTHER, "--on-leak", "block",
                  "--resolve", f"{OTHER}:127.0.0.1", "--upstream-ca", str(ca_file), "--",
                  "sh", "-c", f'curl -sS -i -H "Authorization: Bearer $T" {url}')  # fmt: skip
    assert r.code == 0, str(r)
    assert re.search(r"(?m)^HTTP/\S+ 403\b", r.stdout), str(r)
    assert re.search(r"(?im)^X-Coatcheck-Reason: placeholder_leak\r?$", r.stdout), str(r)
    assert received(upstream, f"?block={mark}") == []


def test_not_allowlisted_host_is_refused_with_403_and_a_reason(
    tools: Tools, upstream: Upstream
) -> None:
    refused = tools.probe["refused"]
    assert refused["rc"] != 0, refused
    assert re.search(r"(?m)^HTTP/1\.1 403\b", refused["stdout"]), refused
    assert re.search(r"(?im)^X-Coatcheck-Reason: not_allowlisted\r?$", refused["stdout"]), refused
    assert received(upstream, f"?refused={tools.mark}") == []


def test_git_reaches_the_upstream_through_the_proxy(tools: Tools, upstream: Upstream) -> None:
    git = tools.probe["git"]
    # The upstream is no git server: git fails at the HTTP level, after a verified TLS session
    # through the proxy, not with a TLS or CONNECT error.
    assert git["rc"] == 128, git
    assert "is this a git repository?" in git["stderr"], git
    for word in ("SSL", "certificate", "CONNECT", "proxy", "Could not resolve"):
        assert word not in git["stderr"], git
    paths = [r.path for r in received_with(upstream, f"/{tools.mark}/repo.git/")]
    assert f"/{tools.mark}/repo.git/info/refs?service=git-upload-pack" in paths, paths


def test_without_upstream_ca_the_untrusted_upstream_is_refused(
    home: Home, token: str, upstream: Upstream
) -> None:
    mark = secrets.token_hex(6)
    url = f"https://{API}:{upstream.port}/echo?noca={mark}"
    r = coatcheck(home, "run", "--secret", "T", "--resolve", f"{API}:127.0.0.1", "--",
                  "sh", "-c", f'curl -sS -o /dev/null -w "%{{http_code}}" '
                              f'-H "Authorization: Bearer $T" {url}')  # fmt: skip
    assert r.code == 0, str(r)  # curl itself ran: the proxy answered
    assert r.stdout == "502", str(r)
    assert received(upstream, f"?noca={mark}") == []


# -- --help -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), ("run", "vault", "proxy")),
        (("run",), ("--secret", "--allow", "--resolve", "--timeout", "124", "125")),
        (("vault",), ("set", "list", "rm")),
        (("vault", "set"), ("--domains", "*.example.com", "stdin")),
        (("vault", "list"), ("--json",)),
        (("vault", "rm"), ("NAME",)),
        (("proxy",), ("--resolve", "--upstream-ca", "--audit-log")),
    ],
    ids=["coatcheck", "run", "vault", "vault-set", "vault-list", "vault-rm", "proxy"],
)
def test_help_works_on_every_command(home: Home, argv: tuple[str, ...],
                                     words: tuple[str, ...]) -> None:  # fmt: skip
    r = coatcheck(home, *argv, "--help")
    assert r.code == 0, str(r)
    assert r.stdout.startswith(f"Usage: coatcheck {' '.join(argv)}".rstrip()), r.stdout
    for word in words:
        assert word in r.stdout, (word, r.stdout)
    assert r.stderr == ""
