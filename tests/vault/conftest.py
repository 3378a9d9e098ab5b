"""Every vault test runs in its own COATCHECK_HOME, with no key file and no real keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

from vault.keystore import MemoryKeystore


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "coatcheck-home"
    monkeypatch.setenv("COATCHECK_HOME", str(home))
    monkeypatch.delenv("COATCHECK_VAULT_KEY_FILE", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # never touch a real OS keyring
    try:
        yield home
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def keystore() -> MemoryKeystore:
    return MemoryKeystore()
