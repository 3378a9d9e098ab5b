"""``coatcheck check`` (runner/cli_check.py), in process; and the shipped examples pass it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runner.cli import main
from vault.secret import SecretValue
from vault.store import Vault

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


@pytest.fixture
def home() -> Path:
    return Path(os.environ["COATCHECK_HOME"])


@pytest.fixture
def model_key(home: Path) -> None:
    Vault.open(home).set(
        "ANTHROPIC_API_KEY", SecretValue("sk-ant-test-0123456789"), ["api.anthropic.com"]
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_examples_pass_check(model_key: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert {p.name for p in EXAMPLES} >= {
        "ci-smoke.toml",
        "nightly-bug-fix.toml",
        "nightly-error-triage.toml",
        "nightly-report.toml",
        "weekly-dependency-scan.toml",
        "weekly-docs-drift.toml",
    }
    code = main(["check", *map(str, EXAMPLES)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines() == [
        "ok ci-smoke (command)",
        "ok nightly-bug-fix (agent)",
        "ok nightly-error-triage (agent)",
        "ok nightly-report (command)",
        "ok weekly-dependency-scan (agent)",
        "ok weekly-docs-drift (agent)",
    ]
    assert err == ""


def test_agent_examples_pass_without_the_model_key_with_a_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`check` validates job files on any machine (a CI lint step); the key that is not vaulted
    here yet is a note naming the fix, and `coatcheck run` refuses until it is there."""
    code = main(["check", *map(str, EXAMPLES)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(out.splitlines()) == 6
    assert (
        "nightly-error-triage.toml: note: before it runs here: no secret ANTHROPIC_API_KEY" in err
    )
    assert "`coatcheck vault set ANTHROPIC_API_KEY --domains api.anthropic.com`" in err


def test_bad_files_print_one_line_per_problem_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.toml", 'command = ["true"]')
    bad = write(tmp_path, "bad.toml", 'command = ["true"]\non_leak = "drop"\ntimeout = "x"')
    code = main(["check", str(good), str(bad)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == "ok good (command)\n"
    assert err.splitlines() == [
        f'{bad}: timeout: "x" is not a duration: seconds (timeout = 90) or a number with a unit '
        's, m or h (timeout = "5m")',
        f'{bad}: on_leak: must be "log" or "block", e.g. on_leak = "block"',
        "coatcheck: 1 of 2 job files need fixing",
    ]


def test_json_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.toml", 'name = "g"\ncommand = ["true"]')
    missing = tmp_path / "missing.toml"
    code = main(["check", "--json", str(good), str(missing)])
    out, err = capsys.readouterr()
    assert code == 2 and err == ""
    assert json.loads(out) == [
        {"file": str(good), "ok": True, "name": "g", "kind": "command"},
        {
            "file": str(missing),
            "ok": False,
            "problems": [
                {"field": "", "message": "no such file; give the path of a .toml job file"}
            ],
        },
    ]


def test_check_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "Missing argument" in capsys.readouterr().err
