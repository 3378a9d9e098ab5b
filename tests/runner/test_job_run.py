"""``coatcheck run JOBFILE`` end to end, through the real proxy and the real Docker engine: the
run directory (run.json, output.log, this run's audit lines only), --junit, a failing job and a
timeout. The local TLS upstream (trustme) stands in for the outside world."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.helpers import RELEASE_FILE, Home, Result, coatcheck, inspected_run, vault_set
from tests.support.upstream import Upstream, received_with

pytestmark = pytest.mark.docker

API = "api.coatcheck.test"
EVIL = "evil.test"
CLOSING = re.compile(
    r"^coatcheck: run (r-[0-9a-f]{16}) (\w+) \(exit (\d+)\) in [0-9.]+s; "
    r"record: (.+)$"
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return Home(tmp_path_factory.mktemp("job-run"))


@pytest.fixture(scope="module")
def token(home: Home) -> str:
    value = "sk-job-" + secrets.token_hex(16)
    vault_set(home, "T", value, API)
    return value


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, ca_file: Path) -> Path:
    """A directory of job files, with the upstream's CA beside them (upstream_ca is relative)."""
    path = tmp_path_factory.mktemp("jobs")
    (path / "certs").mkdir()
    shutil.copy(ca_file, path / "certs" / "upstream-ca.pem")
    return path


def write_job(jobs: Path, name: str, body: str) -> Path:
    path = jobs / f"{name}.toml"
    path.write_text(f'name = "{name}"\n{body}')
    return path


@dataclass(frozen=True)
class Ran:
    result: Result
    run_id: str
    run_dir: Path

    def record(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "run.json").read_text()))

    def audit(self) -> list[dict[str, Any]]:
        text = (self.run_dir / "audit.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def ran(home: Home, result: Result) -> Ran:
    """The run a ``coatcheck run`` result names on its last stderr line."""
    m = CLOSING.match(result.stderr.splitlines()[-1]) if result.stderr else None
    assert m is not None, str(result)
    assert int(m[3]) == result.code, str(result)
    run_dir = Path(m[4])
    assert run_dir == home.path / "runs" / m[1]
    return Ran(result, m[1], run_dir)


# -- a command job through the proxy ----------------------------------------------------------
@dataclass(frozen=True)
class Smoke:
    ran: Ran
    other: Ran
    mark: str
    junit: Path


@pytest.fixture(scope="module")
def smoke(home: Home, token: str, upstream: Upstream, jobs: Path) -> Smoke:
    """Another run first (its audit lines must not show up in the job's), then the job: an
    env variable, the secret through the proxy, a refused host, git, output on both streams."""
    other = coatcheck(
        home,
        "run",
        "--resolve",
        f"{EVIL}:127.0.0.1",
        "--",
        "sh",
        "-c",
        f"curl -sS https://{EVIL}:{upstream.port}/other || true",
    )
    mark = secrets.token_hex(8)
    script = (
        'echo "greeting=$GREETING"; '
        f"curl -sS -o /dev/null -w 'api=%{{http_code}}\\n' -H \"Authorization: Bearer $T\" "
        f"'https://{API}:{upstream.port}/echo?job={mark}'; "
        f"curl -sS https://{EVIL}:{upstream.port}/refused-{mark} || echo refused-{mark} >&2; "
        "git --version >/dev/null && echo git-ok"
    )
    job = write_job(
        jobs,
        "e2e-smoke",
        f"""
timeout = "2m"
secrets = ["T"]
resolve = ["{API}:127.0.0.1"]
upstream_ca = ["certs/upstream-ca.pem"]
env = {{ GREETING = "hello-job" }}
command = ["sh", "-c", {json.dumps(script)}]
""",
    )
    junit = jobs / "smoke.xml"
    # --resolve adds to the file's list (evil.test), --junit writes the CI result.
    r = coatcheck(home, "run", str(job), "--resolve", f"{EVIL}:127.0.0.1", "--junit", str(junit))
    return Smoke(ran(home, r), ran(home, other), mark, junit)


def test_the_job_runs_and_exits_0(smoke: Smoke) -> None:
    r = smoke.ran.result
    assert r.code == 0, str(r)
    assert r.stdout.splitlines() == ["greeting=hello-job", "api=200", "git-ok"], str(r)
    assert f"refused-{smoke.mark}" in r.stderr


def test_the_upstream_got_the_real_secret(smoke: Smoke, upstream: Upstream, token: str) -> None:
    [got] = received_with(upstream, f"?job={smoke.mark}")
    assert got.header("Authorization") == f"Bearer {token}"
    assert received_with(upstream, f"refused-{smoke.mark}") == []


def test_run_json_records_the_run(smoke: Smoke) -> None:
    rec = smoke.ran.record()
    assert rec["id"] == smoke.ran.run_id
    assert (rec["job"], rec["kind"], rec["status"], rec["exit_code"]) == (
        "e2e-smoke",
        "command",
        "succeeded",
        0,
    )
    assert (rec["image"], rec["secrets"], rec["error"]) == ("coatcheck/sandbox:latest", ["T"], None)
    assert rec["started"] <= rec["finished"] and rec["duration_s"] > 0
    assert (smoke.ran.run_dir.stat().st_mode & 0o777) == 0o700


def test_output_log_holds_both_streams(smoke: Smoke) -> None:
    log = (smoke.ran.run_dir / "output.log").read_text()
    for line in ("greeting=hello-job", "api=200", "git-ok", f"refused-{smoke.mark}"):
        assert line in log, log


def test_audit_jsonl_holds_this_runs_lines_only(smoke: Smoke, home: Home) -> None:
    mine = smoke.ran.audit()
    assert {e["run_id"] for e in mine} == {smoke.ran.run_id}
    assert [(e["host"], e["decision"], e["reason"]) for e in mine if e["host"] == EVIL] == [
        (EVIL, "deny", "not_allowlisted")
    ]
    assert [e["secrets_injected"] for e in mine if e["host"] == API] == [["T"]]
    # The shared audit log has the other run's lines too; they were left out.
    everyone = [json.loads(x) for x in home.audit_log.read_text().splitlines() if x]
    assert smoke.other.run_id in {e["run_id"] for e in everyone}
    assert {e["run_id"] for e in smoke.other.audit()} == {smoke.other.run_id}


def test_no_real_value_in_the_run_directory_or_output(smoke: Smoke, token: str) -> None:
    for path in smoke.ran.run_dir.iterdir():
        assert token.encode() not in path.read_bytes(), path
    assert token not in smoke.ran.result.stdout + smoke.ran.result.stderr
    assert token.encode() not in smoke.junit.read_bytes()


def test_junit_result(smoke: Smoke) -> None:
    suite = ET.fromstring(smoke.junit.read_bytes())  # noqa: S314 - our own output
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
    case = suite.find("testcase")
    assert case is not None and case.get("name") == "e2e-smoke"
    assert float(case.get("time") or 0) == pytest.approx(smoke.ran.record()["duration_s"])
    assert case.find("failure") is None
    assert "greeting=hello-job" in (case.findtext("system-out") or "")


def test_a_plain_command_run_is_recorded_too(smoke: Smoke) -> None:
    rec = smoke.other.record()
    assert (rec["job"], rec["kind"], rec["status"], rec["exit_code"]) == (
        None,
        "command",
        "succeeded",
        0,
    )


# -- a failing job, a timeout ------------------------------------------------------------------
def test_a_failing_job_passes_its_exit_code_through(home: Home, jobs: Path) -> None:
    job = write_job(jobs, "e2e-fails", 'command = ["sh", "-c", "echo before-failing; exit 3"]\n')
    junit = jobs / "fails.xml"
    r = coatcheck(home, "run", "--junit", str(junit), str(job))
    assert r.code == 3, str(r)
    run = ran(home, r)
    rec = run.record()
    assert (rec["status"], rec["exit_code"], rec["error"]) == ("failed", 3, None)
    assert (run.run_dir / "output.log").read_text() == "before-failing\n"
    case = ET.fromstring(junit.read_bytes()).find("testcase")  # noqa: S314
    assert case is not None
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "exit code 3"
    assert case.findtext("system-out") == "before-failing\n"


def test_a_job_that_runs_too_long_exits_124(home: Home, jobs: Path) -> None:
    job = write_job(
        jobs,
        "e2e-slow",
        'timeout = "1s"\ncommand = ["sh", "-c", "echo started; sleep 600; echo finished"]\n',
    )
    junit = jobs / "slow.xml"
    r = coatcheck(home, "run", str(job), "--junit", str(junit), timeout=120)
    assert r.code == 124, str(r)
    assert "finished" not in r.stdout
    run = ran(home, r)
    assert run.record()["status"] == "timeout"
    assert " timeout (exit 124) " in r.stderr.splitlines()[-1]
    failure = ET.fromstring(junit.read_bytes()).find("testcase/failure")  # noqa: S314
    assert failure is not None and failure.get("type") == "timeout"


def test_the_timeout_flag_overrides_the_file(home: Home, jobs: Path) -> None:
    job = write_job(jobs, "e2e-override", 'timeout = "1h"\ncommand = ["sleep", "600"]\n')
    r = coatcheck(home, "run", str(job), "--timeout", "1", timeout=120)
    assert r.code == 124, str(r)


def test_a_setup_error_is_recorded(home: Home, jobs: Path) -> None:
    job = write_job(jobs, "e2e-noimage", 'image = "no/such:image"\ncommand = ["true"]\n')
    r = coatcheck(home, "run", str(job))
    assert r.code == 125, str(r)
    assert r.stderr.startswith("coatcheck: error:") and "no/such:image" in r.stderr
    rec = ran(home, r).record()
    assert (rec["status"], rec["exit_code"]) == ("error", 125)
    assert "no/such:image" in rec["error"]


def test_job_resources_reach_the_container(home: Home, jobs: Path, docker_api: Any) -> None:
    wait = f"while [ ! -e {RELEASE_FILE} ]; do sleep 0.05; done; echo released"
    job = write_job(
        jobs,
        "e2e-limits",
        f"""
resources = {{ memory = "256m", cpus = 0.5, pids = 64 }}
command = ["sh", "-c", {json.dumps(wait)}]
""",
    )
    inspect, r = inspected_run(home, docker_api, str(job))
    assert r.code == 0 and r.stdout == "released\n", str(r)
    host = inspect["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (256 * 1024**2, 5 * 10**8, 64)
