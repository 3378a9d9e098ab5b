"""``coatcheck vault set --rotate-after`` and the AGE, ROTATE and DUE of ``vault list``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import UsageError
from tests.vault.helpers import SENTINEL, invoke, output_of
from vault.keystore import FileKeystore
from vault.secret import SecretValue
from vault.store import Vault

DAY = 86400


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "vault.key"
    monkeypatch.setenv("COATCHECK_VAULT_KEY_FILE", str(path))
    return path


def set_ok(*args: str) -> str:
    result = invoke(["set", *args], input=SENTINEL)
    assert result.exit_code == 0, output_of(result)
    return result.output


def aged(home: Path, key_file: Path, name: str, days: int, rotate_after: int | None) -> None:
    """Store ``name`` as if it had been set ``days`` ago."""
    then = datetime.now(UTC) - timedelta(days=days, hours=1)
    vault = Vault.open(home, keystore=FileKeystore(key_file), clock=lambda: then)
    vault.set(name, SecretValue(SENTINEL), ["a.example"], rotate_after=rotate_after)


def policy(home: Path, name: str) -> int | None:
    return {m.name: m for m in Vault.open(home).list()}[name].rotate_after


def test_set_rotate_after_stores_seconds(home: Path, key_file: Path) -> None:
    out = set_ok("GH", "--domains", "api.github.com", "--rotate-after", "30d")
    assert out.strip() == "stored GH for api.github.com; rotate every 30d"
    assert policy(home, "GH") == 30 * DAY


def test_set_without_the_flag_keeps_the_policy_and_never_clears_it(
    home: Path, key_file: Path
) -> None:
    set_ok("GH", "--domains", "api.github.com", "--rotate-after", "12w")
    set_ok("GH", "--domains", "api.github.com")
    assert policy(home, "GH") == 84 * DAY
    set_ok("GH", "--domains", "api.github.com", "--rotate-after", "never")
    assert policy(home, "GH") is None


@pytest.mark.parametrize("value", ["30", "1m", "6y", "soon"])
def test_a_bad_period_stores_nothing(home: Path, key_file: Path, value: str) -> None:
    result = invoke(["set", "GH", "--domains", "a.example", "--rotate-after", value],
                    input=SENTINEL)  # fmt: skip
    assert isinstance(result.exception, UsageError) and result.exception.exit_code == 2
    assert "--rotate-after" in result.exception.message and "30d" in result.exception.message
    assert "nothing was stored" in result.exception.message
    assert not (home / "vault.json").exists()


def test_list_shows_age_rotate_and_flags_overdue(
    home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aged(home, key_file, "OLD", 45, 30 * DAY)
    aged(home, key_file, "FRESH", 3, 30 * DAY)
    aged(home, key_file, "FREE", 400, None)
    monkeypatch.delenv("COATCHECK_VAULT_KEY_FILE")  # list needs no keystore
    result = invoke(["list"])
    assert result.exit_code == 0, output_of(result)
    lines = result.output.splitlines()
    assert lines[0].split()[5:] == ["AGE", "ROTATE", "DUE"]
    rows = {line.split()[0]: line.split()[5:] for line in lines[1:4]}
    assert rows["OLD"] == ["45d", "30d", "OVERDUE"]
    assert rows["FREE"] == ["400d", "-", "-"]
    assert rows["FRESH"][:2] == ["3d", "30d"]
    due = (datetime.now(UTC) + timedelta(days=27)).date()
    assert abs((datetime.fromisoformat(rows["FRESH"][2]).date() - due).days) <= 1
    assert "1 overdue for rotation (OLD)" in result.output
    assert SENTINEL not in result.output


def test_list_json_has_age_policy_and_overdue(home: Path, key_file: Path) -> None:
    aged(home, key_file, "OLD", 45, 30 * DAY)
    aged(home, key_file, "FREE", 2, None)
    rows = {r["name"]: r for r in json.loads(invoke(["list", "--json"]).output)}
    assert (rows["OLD"]["age_days"], rows["OLD"]["rotate_after_s"], rows["OLD"]["overdue"]) == (
        45, 30 * DAY, True,
    )  # fmt: skip
    assert (rows["FREE"]["age_days"], rows["FREE"]["rotate_after_s"], rows["FREE"]["overdue"]) == (
        2, None, False,
    )  # fmt: skip


def test_list_without_overdue_secrets_adds_no_note(home: Path, key_file: Path) -> None:
    set_ok("GH", "--domains", "api.github.com", "--rotate-after", "30d")
    result = invoke(["list"])
    assert "overdue" not in result.output.lower()
