"""``coatcheck run`` argument handling (runner/cli_run.py), without Docker: a job file or a
command, and how flags add to or override a job file."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from runner.cli import main
from runner.cli_run import job_request, run_command
from runner.jobfile import parse_job
from runner.run import DEFAULT_IMAGE
from sandbox.docker import Limits


def parsed(*args: str) -> tuple[bool, tuple[str, ...], dict[str, object]]:
    ctx = run_command.make_context("run", list(args))
    return bool(ctx.meta["coatcheck.job_file"]), ctx.params["command"], ctx.params


@pytest.mark.parametrize(
    ("args", "job_mode", "command"),
    [
        (("job.toml",), True, ("job.toml",)),
        (("job.toml", "--secret", "T", "--timeout", "5m"), True, ("job.toml",)),
        (("--secret", "T", "job.toml", "--allow", "x.test"), True, ("job.toml",)),
        (("--env", "A=b.toml", "job.toml"), True, ("job.toml",)),
        (("--", "sh", "-c", "cat x.toml"), False, ("sh", "-c", "cat x.toml")),
        (("--secret", "T", "--", "job.toml"), False, ("job.toml",)),
        (("cat", "--secret", "x.toml"), False, ("cat", "--secret", "x.toml")),
        (
            ("--log-json", "--", "curl", "-sS", "https://x.test"),
            False,
            ("curl", "-sS", "https://x.test"),
        ),
    ],
    ids=[
        "job-alone",
        "flags-after-the-job",
        "flags-around-the-job",
        "option-value-is-no-job",
        "command-after-dashes",
        "dashes-make-it-a-command",
        "command-flags-stay-its-own",
        "flag-then-command",
    ],
)
def test_job_file_or_command(
    args: tuple[str, ...], job_mode: bool, command: tuple[str, ...]
) -> None:
    got_mode, got_command, _ = parsed(*args)
    assert (got_mode, got_command) == (job_mode, command)


def test_timeout_flag_takes_durations() -> None:
    assert parsed("--timeout", "1h30m", "--", "true")[2]["timeout"] == 5400.0
    assert parsed("--timeout", "1", "--", "true")[2]["timeout"] == 1.0
    with pytest.raises(click.BadParameter, match='"soon" is not a duration'):
        parsed("--timeout", "soon", "--", "true")


def test_flags_add_to_lists_and_override_scalars(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    job = parse_job(
        {
            "command": ["make", "test"],
            "secrets": ["A"],
            "allow": ["a.test"],
            "resolve": ["a.test:10.0.0.1"],
            "upstream_ca": ["ca.pem"],
            "env": {"K": "job", "J": "1"},
            "image": "job/image:1",
            "timeout": "5m",
            "on_leak": "block",
            "resources": {"memory": "256m", "pids": 64},
        },
        source=tmp_path / "job.toml",
    )
    _, _, flags = parsed(
        "job.toml",
        "--secret",
        "B",
        "--secret",
        "A",
        "--allow",
        "b.test",
        "--resolve",
        "b.test:10.0.0.2",
        "--env",
        "K=flag",
        "--timeout",
        "10",
        "--on-leak",
        "log",
        "--allow-cidr",
        "10.0.0.0/8",
    )
    req = job_request(job, flags)
    assert req.command == ("make", "test")
    assert req.secrets == ("A", "B") and req.allow == ("a.test", "b.test")
    assert req.resolve == ("a.test:10.0.0.1", "b.test:10.0.0.2")
    assert req.allow_cidr == ("10.0.0.0/8",)
    assert req.upstream_ca == ((tmp_path / "ca.pem").resolve(),)
    assert dict(req.env) == {"K": "flag", "J": "1"}
    assert (req.image, req.timeout, req.on_leak) == ("job/image:1", 10.0, "log")
    assert req.limits == Limits(memory="256m", pids=64)


def test_without_flags_the_file_decides(tmp_path: Path) -> None:
    job = parse_job({"command": ["true"]}, source=tmp_path / "j.toml")
    req = job_request(job, parsed("j.toml")[2])
    assert (req.image, req.timeout, req.on_leak, req.limits) == (DEFAULT_IMAGE, None, "log", None)


def test_a_job_file_takes_no_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "j.toml"
    job.write_text('command = ["true"]')
    assert main(["run", str(job), "extra"]) == 2
    assert "is a job file: it runs its own command" in capsys.readouterr().err


def test_a_bad_job_file_exits_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "j.toml"
    job.write_text('command = ["true"]\nresources = { pids = 1 }')
    assert main(["run", str(job)]) == 2
    assert capsys.readouterr().err == (
        f"coatcheck: error: {job}: resources.pids: must be a whole number from 16 up, "
        "e.g. pids = 512\n"
    )
    assert not (tmp_path / "home" / "runs").exists()


def test_an_agent_job_is_validated_against_the_vault_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = tmp_path / "agent.toml"
    job.write_text('secrets = ["ANTHROPIC_API_KEY"]\n[agent]\nmodel = "m"\nprompt = "p"\n')
    assert main(["run", str(job)]) == 2  # the key is not vaulted
    assert "no secret ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "home" / "runs").exists()


def test_junit_needs_an_existing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--junit", str(tmp_path / "no" / "r.xml"), "--", "true"]) == 2
    assert "--junit" in capsys.readouterr().err
