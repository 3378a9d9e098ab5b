"""Real values for the proxy, read from the vault and re-read whenever the vault file changes.

This is what makes rotation work without a restart: each request asks for the generation (one
``stat``), and a changed file is decrypted again before the request is handled.
"""

from __future__ import annotations

import threading

from vault.secret import SecretMeta
from vault.store import Vault


class VaultValues:
    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._lock = threading.Lock()
        self._gen: object = object()
        self._values: dict[str, str] = {}
        self._metas: dict[str, SecretMeta] = {}

    def generation(self) -> object:
        return self._vault.version()

    def _refresh(self) -> None:
        if self._vault.version() == self._gen:
            return
        with self._lock:
            version, secrets = self._vault.snapshot()
            self._values = {name: s.value.reveal() for name, s in secrets.items()}
            self._metas = {name: s.meta for name, s in secrets.items()}
            self._gen = version

    def reveal(self, name: str) -> str | None:
        self._refresh()
        return self._values.get(name)

    def meta(self, name: str) -> SecretMeta | None:
        self._refresh()
        return self._metas.get(name)
