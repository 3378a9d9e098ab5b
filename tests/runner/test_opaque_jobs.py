"""``allow_opaque`` in job files and ``--allow-opaque`` on the command line: parsed at the edge,
added to by flags, and refused by ``coatcheck check`` (and before a run starts) where it covers
a domain one of the job's secrets is vaulted for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import InvalidJobFile, UsageError
from runner.cli import main
from runner.cli_run import job_request
from runner.jobfile import load_job
from runner.run import RunRequest, check_flags, check_opaque, registration
from vault.secret import SecretValue
from vault.store import Vault

FLAGS = {
    "secrets": (), "allow": (), "allow_opaque": ("files.pyfiles.test",), "resolve": (),
    "allow_cidr": (), "upstream_ca": (), "env": (), "image": None, "timeout": None,
    "on_leak": None,
}  # fmt: skip


@pytest.fixture
def home() -> Path:
    return Path(os.environ["COATCHECK_HOME"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text('name = "opaque"\ncommand = ["true"]\n' + text)
    return path


def test_a_job_file_lists_opaque_hosts(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, 'allow_opaque = ["PyPI.test", "*.pyfiles.test"]\n'))
    assert job.allow_opaque == ("pypi.test", "*.pyfiles.test")
    req = job_request(job, FLAGS)
    assert req.allow_opaque == ("pypi.test", "*.pyfiles.test", "files.pyfiles.test")
    assert req.allow == ()  # opaque is its own allowlist, not --allow
    reg = registration(req, "r-opaque-job", {})
    assert reg.allow_opaque == req.allow_opaque


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["https://pypi.test/simple"]', "allow_opaque[0]"),
        ('["*"]', "allow_opaque[0]"),
        ('"pypi.test"', "allow_opaque"),
    ],
)
def test_a_bad_opaque_pattern_names_its_field(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(InvalidJobFile) as exc:
        load_job(write(tmp_path, f"allow_opaque = {value}\n"))
    assert words in str(exc.value.message)


def test_check_refuses_an_opaque_pattern_over_a_secret_domain(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Vault.open(home).set("GH_TOKEN", SecretValue("ghp_test0123456789"), ["api.github.test"])
    path = write(tmp_path, 'secrets = ["GH_TOKEN"]\nallow_opaque = ["*.github.test"]\n')
    code = main(["check", str(path)])
    _, err = capsys.readouterr()
    assert code != 0
    assert "allow_opaque" in err and "api.github.test" in err and "GH_TOKEN" in err, err
    assert "opaque hosts get no secret" in err
    fine = write(tmp_path, 'secrets = ["GH_TOKEN"]\nallow_opaque = ["pypi.test"]\n')
    assert main(["check", str(fine)]) == 0, capsys.readouterr().err


def test_a_run_with_a_conflicting_flag_is_refused_before_it_starts(home: Path) -> None:
    Vault.open(home).set("GH_TOKEN", SecretValue("ghp_test0123456789"), ["api.github.test"])
    [meta] = [m for m in Vault.open(home).list() if m.name == "GH_TOKEN"]
    with pytest.raises(UsageError, match="opaque hosts get no secret"):
        check_opaque(("api.github.test",), [meta])
    check_opaque(("pypi.test",), [meta])
    with pytest.raises(UsageError):
        check_flags(RunRequest(command=("true",), allow_opaque=("pypi.test/simple",)))
