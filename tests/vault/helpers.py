"""Shared fakes and helpers for the vault tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from click.testing import CliRunner, Result

from core.errors import KeystoreUnavailable
from vault.cli import vault_group

# A value distinctive enough that finding it anywhere means it leaked.
SENTINEL = "ghp_SENTINELvalue0123456789abcdefXYZ"


class RaisingKeystore:
    """A keystore that fails the test's expectations if anything asks it for the key."""

    def __init__(self) -> None:
        self.calls = 0

    def load_key(self) -> bytes:
        self.calls += 1
        raise KeystoreUnavailable("RaisingKeystore: this operation must not need the key")


class FakeBackend:
    """An in-memory stand-in for an OS keyring backend (get/set by service and user)."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password


def invoke(args: Sequence[str], input: str | bytes | None = None, **kw: Any) -> Result:
    """Run ``coatcheck vault ARGS`` in-process; errors stay in ``result.exception``."""
    return CliRunner().invoke(vault_group, list(args), input=input, **kw)


def output_of(result: Result) -> str:
    """Everything the command printed, on stdout and stderr."""
    return result.output + result.stderr


def concurrent_setter(home: str, key_file: str, worker: int, count: int) -> None:
    """Run in a child process: many ``set`` calls racing other workers on one vault."""
    from pathlib import Path

    from vault.keystore import FileKeystore
    from vault.secret import SecretValue
    from vault.store import Vault

    vault = Vault.open(Path(home), keystore=FileKeystore(Path(key_file)))
    for i in range(count):
        vault.set(f"W{worker}_S{i}", SecretValue(f"value-{worker}-{i}"), ["api.example.com"])
        vault.set("SHARED", SecretValue(f"shared-{worker}-{i}"), ["api.example.com"])
