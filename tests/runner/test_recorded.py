"""A run with its record (runner/recorded.py), with a fake sandbox run in place of Docker: the
run directory, its statuses, the closing line and the JUnit file, however the run ends."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from core.errors import DockerUnavailable, InvalidDomain, Stopped
from proxy.paths import ProxyPaths
from runner.recorded import Finished, run_recorded, status_of
from runner.run import RunRequest

FakeRun = Callable[..., int]


@pytest.fixture
def home() -> Path:
    return Path(os.environ["COATCHECK_HOME"])


def fake(
    code: int = 0,
    *,
    out: bytes = b"",
    err: bytes = b"",
    raises: BaseException | None = None,
    audit: bool = True,
) -> FakeRun:
    """A stand-in for runner.run.execute: prints, writes audit lines (one of another run),
    then returns ``code`` or raises."""

    def run(
        req: RunRequest,
        *,
        home: Path,
        run_id: str,
        stdout: IO[bytes],
        stderr: IO[bytes],
        log: IO[str] | None,
    ) -> int:
        stdout.write(out)
        stderr.write(err)
        if audit:
            log_path = ProxyPaths.for_home(home).audit_log
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a") as f:
                for rid in (run_id, "r-someoneelse0000", run_id):
                    f.write(json.dumps({"run_id": rid, "host": "evil.test"}) + "\n")
        if raises is not None:
            raise raises
        return code

    return run


def record_of(home: Path, run: FakeRun, req: RunRequest | None = None, **kw: Any) -> Finished:
    return run_recorded(
        req or RunRequest(command=("true",), secrets=()),
        home=home,
        run=run,
        stdout=io.BytesIO(),
        stderr=io.BytesIO(),
        **kw,
    )


def test_a_succeeding_run(home: Path) -> None:
    done = record_of(home, fake(0, out=b"hello\n", err=b"warn\n"), job="smoke")
    r = done.record
    assert done.run_dir.path == home / "runs" / r.id and done.error is None
    assert (r.job, r.kind, r.status, r.exit_code, r.error) == (
        "smoke",
        "command",
        "succeeded",
        0,
        None,
    )
    assert r.finished is not None and r.finished >= r.started and r.duration_s is not None
    assert done.run_dir.read_record() == r
    assert done.run_dir.output_log.read_bytes() == b"hello\nwarn\n"
    lines = done.run_dir.audit_jsonl.read_text().splitlines()
    assert [json.loads(x)["run_id"] for x in lines] == [r.id, r.id]
    assert done.closing_line().startswith(f"coatcheck: run {r.id} succeeded (exit 0) in ")
    assert done.closing_line().endswith(f"; record: {done.run_dir.path}")


@pytest.mark.parametrize(
    ("code", "elapsed", "timeout", "status"),
    [
        (0, 1, None, "succeeded"),
        (1, 1, None, "failed"),
        (124, 5, 5, "timeout"),
        (124, 1, 5, "failed"),
        (124, 1, None, "failed"),
        (125, 1, None, "failed"),
    ],
    ids=[
        "zero",
        "one",
        "timed-out",
        "124-before-the-timeout",
        "124-without-timeout",
        "125-from-the-command",
    ],
)
def test_status_of_an_exit_code(
    code: int, elapsed: float, timeout: float | None, status: str
) -> None:
    assert status_of(code, elapsed, timeout) == status


def test_a_failing_command_passes_its_code_through(home: Path) -> None:
    done = record_of(home, fake(7))
    assert (done.record.status, done.exit_code, done.record.job) == ("failed", 7, None)


def test_a_setup_error_is_recorded_and_returned(home: Path) -> None:
    done = record_of(home, fake(raises=DockerUnavailable("no Docker engine answers")))
    assert done.error is not None and done.exit_code == 125
    assert (done.record.status, done.record.error) == ("error", "no Docker engine answers")
    assert done.run_dir.read_record().status == "error"


def test_a_signal_is_recorded_as_stopped(home: Path) -> None:
    done = record_of(home, fake(raises=Stopped(15, "SIGTERM")))
    assert (done.record.status, done.exit_code) == ("stopped", 143)


def test_ctrl_c_is_recorded_then_raised(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(KeyboardInterrupt):
        record_of(home, fake(raises=KeyboardInterrupt()))
    [run_dir] = (home / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("stopped", 130)
    assert f"coatcheck: run {run_dir.name} stopped (exit 130)" in capsys.readouterr().err


def test_bad_flags_fail_before_any_run_exists(home: Path) -> None:
    req = RunRequest(command=("true",), allow=("*",))
    with pytest.raises(InvalidDomain):
        record_of(home, fake(0), req)
    assert not (home / "runs").exists()


def test_no_secret_value_reaches_the_record(home: Path) -> None:
    req = RunRequest(command=("true",), secrets=())
    done = record_of(home, fake(0, out=b"ccph_placeholder\n"), req)
    text = done.run_dir.run_json.read_text()
    assert json.loads(text)["secrets"] == [] and "ccph_" not in text


def test_junit_file_is_written_for_the_job(home: Path, tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    path = tmp_path / "ci" / "result.xml"
    done = record_of(
        home, fake(3, out=b"\x1b[31mFAILED\x1b[0m ]]>\n"), job="smoke", junit_file=path
    )
    suite = ET.fromstring(path.read_bytes())  # noqa: S314 - our own output
    case = suite.find("testcase")
    assert case is not None and case.get("name") == "smoke"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "exit code 3"
    assert case.findtext("system-out") == "\\x1b[31mFAILED\\x1b[0m ]]>\n"
    assert float(case.get("time") or -1) == pytest.approx(done.record.duration_s)
    assert [p.name for p in path.parent.iterdir()] == ["result.xml"]  # no temporary left


def test_junit_names_a_plain_command_after_it(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    record_of(home, fake(0), RunRequest(command=("sh", "-c", "echo hi")), junit_file=path)
    case = ET.fromstring(path.read_bytes()).find("testcase")  # noqa: S314
    assert case is not None and case.get("name") == "sh -c 'echo hi'"


def test_an_unwritable_junit_file_warns_and_keeps_the_outcome(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    done = record_of(home, fake(4), junit_file=tmp_path / "taken")
    assert done.exit_code == 4
    assert "coatcheck: warning: could not write --junit" in capsys.readouterr().err
