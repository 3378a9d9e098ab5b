"""vault/rotation.py: rotation periods, a secret's age, overdue, and the run's warning; and the
rotation policy in the store and on disk (old vault files without it still load)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import UsageError, VaultCorrupt
from vault import rotation
from vault.keystore import MemoryKeystore
from vault.secret import SecretMeta, SecretValue
from vault.store import Vault

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = 86400
VALUE = SecretValue("ghp_rotation0123456789")


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def meta(rotate_after: int | None = 30 * DAY, updated: datetime = T0, **kw: object) -> SecretMeta:
    return SecretMeta(name="GH", domains=("api.github.com",), created=T0, updated=updated,
                      rotate_after=rotate_after, **kw)  # type: ignore[arg-type]  # fmt: skip


# -- periods ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("12w", 84 * DAY), ("90d", 90 * DAY), ("720h", 30 * DAY),
     ("1h", 3600), (" 7D ", 7 * DAY), ("1825d", 1825 * DAY)],
    ids=["days", "weeks", "90d", "hours", "minimum", "spaces-and-case", "five-years"],
)  # fmt: skip
def test_parse_period(text: str, seconds: int) -> None:
    assert rotation.parse_period(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["30", "30m", "30s", "1.5d", "-3d", "0h", "d", "", "1826d", "300w", "1d2h", "never"],
    ids=["no-unit", "minutes", "seconds", "fraction", "negative", "zero", "no-number", "empty",
         "over-five-years", "weeks-over", "compound", "never-is-not-a-period"],
)  # fmt: skip
def test_parse_period_refuses_with_the_fix(text: str) -> None:
    with pytest.raises(UsageError) as info:
        rotation.parse_period(text)
    assert "30d" in info.value.message and "5 years" in info.value.message


@pytest.mark.parametrize("text", ["never", "NEVER", "none", "off"])
def test_never_is_no_policy(text: str) -> None:
    assert rotation.parse_policy(text) is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(30 * DAY, "30d"), (84 * DAY, "84d"), (36 * 3600, "36h")]
)
def test_format_period(seconds: int, text: str) -> None:
    assert rotation.format_period(seconds) == text


# -- age and overdue, with the clock passed in -----------------------------------------------
@pytest.mark.parametrize(
    ("age", "overdue"),
    [(timedelta(0), False), (timedelta(days=30), False),
     (timedelta(days=30, seconds=1), True), (timedelta(days=400), True)],
    ids=["new", "exactly-the-period", "a-second-over", "long-over"],
)  # fmt: skip
def test_overdue_is_older_than_the_period(age: timedelta, overdue: bool) -> None:
    assert rotation.is_overdue(meta(), T0 + age) is overdue
    assert rotation.age_days(meta(), T0 + age) == age.days


def test_no_policy_is_never_overdue() -> None:
    assert not rotation.is_overdue(meta(None), T0 + timedelta(days=10_000))
    assert rotation.overdue_warning(meta(None), T0 + timedelta(days=10_000)) is None


def test_the_warning_names_the_secret_its_age_and_the_fix() -> None:
    text = rotation.overdue_warning(meta(), T0 + timedelta(days=45, hours=3))
    assert text == (
        "secret GH was last rotated 45 days ago (rotate after 30d): rotate it with "
        "`coatcheck vault set GH --domains api.github.com` (the new value on stdin)"
    )


def test_the_fix_keeps_the_secrets_rules() -> None:
    m = meta(surfaces=("header",), methods=("GET",), paths=("/v1/*",),
             placeholder_format="shaped")  # fmt: skip
    assert rotation.set_command(m) == (
        "coatcheck vault set GH --domains api.github.com --surfaces header --methods GET "
        "--paths /v1/* --placeholder-format shaped"
    )


def test_overdue_warnings_only_for_overdue_ones() -> None:
    fresh = SecretMeta(name="NEW", domains=("a.example",), created=T0,
                       updated=T0 + timedelta(days=40), rotate_after=30 * DAY)  # fmt: skip
    warnings = rotation.overdue_warnings([meta(), meta(None), fresh], T0 + timedelta(days=41))
    assert len(warnings) == 1 and warnings[0].startswith("secret GH was last rotated 41 days")


# -- the store --------------------------------------------------------------------------------
@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(home: Path, keystore: MemoryKeystore, clock: Clock) -> Vault:
    return Vault.open(home, keystore=keystore, clock=clock)


def test_set_keeps_the_policy_unless_told(vault: Vault, clock: Clock) -> None:
    assert (
        vault.set("GH", VALUE, ["api.github.com"], rotate_after=30 * DAY).rotate_after == 30 * DAY
    )
    clock.now = T0 + timedelta(days=40)
    assert rotation.is_overdue(vault.list()[0], clock.now)
    again = vault.set("GH", VALUE, ["api.github.com"])  # a rotation: the policy stays
    assert again.rotate_after == 30 * DAY and not rotation.is_overdue(again, clock.now)
    assert vault.set("GH", VALUE, ["api.github.com"], rotate_after=None).rotate_after is None
    assert vault.list()[0].rotate_after is None
    assert vault.get("GH").value == VALUE  # the policy is not bound to the ciphertext


def test_a_new_secret_has_no_policy(vault: Vault) -> None:
    assert vault.set("GH", VALUE, ["api.github.com"]).rotate_after is None


def test_set_refuses_a_period_out_of_range(vault: Vault, home: Path) -> None:
    with pytest.raises(UsageError):
        vault.set("GH", VALUE, ["api.github.com"], rotate_after=60)
    assert not (home / "vault.json").exists()


def test_the_policy_is_on_disk_only_when_set(vault: Vault, home: Path) -> None:
    vault.set("A", VALUE, ["a.example"], rotate_after=7 * DAY)
    vault.set("B", VALUE, ["b.example"])
    secrets = json.loads((home / "vault.json").read_text())["secrets"]
    assert secrets["A"]["rotate_after"] == 7 * DAY
    assert "rotate_after" not in secrets["B"]


def test_an_old_vault_file_without_the_field_still_loads(vault: Vault, home: Path) -> None:
    vault.set("GH", VALUE, ["api.github.com"], rotate_after=7 * DAY)
    doc = json.loads((home / "vault.json").read_text())
    del doc["secrets"]["GH"]["rotate_after"]  # as a coatcheck before rotation wrote it
    (home / "vault.json").write_text(json.dumps(doc))
    [m] = vault.list()
    assert m.rotate_after is None
    assert vault.get("GH").value == VALUE


@pytest.mark.parametrize("bad", ["30d", 1.5, True, 10, -1], ids=str)
def test_a_bad_policy_on_disk_is_corrupt(vault: Vault, home: Path, bad: object) -> None:
    vault.set("GH", VALUE, ["api.github.com"])
    doc = json.loads((home / "vault.json").read_text())
    doc["secrets"]["GH"]["rotate_after"] = bad
    (home / "vault.json").write_text(json.dumps(doc))
    with pytest.raises(VaultCorrupt, match="GH"):
        vault.list()
