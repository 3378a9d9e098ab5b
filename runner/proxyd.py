"""The proxy service's process: the proxy, with real values read from the vault.

This is where the two are composed (the proxy never imports the vault). ``coatcheck run``
starts it as ``python -I -m runner.proxyd --ephemeral ...``: ``-I`` keeps the current directory
(and PYTHONPATH) off ``sys.path``, so the installed coatcheck is what runs, wherever the user
stands. ``coatcheck proxy`` runs the same service in its own process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from proxy import service
from runner.values import VaultValues


def open_vault_values(home: Path) -> VaultValues:
    from vault.store import Vault

    return VaultValues(Vault.open(home))


def command(*args: str) -> list[str]:
    """The argv that starts this service as a child, independent of the current directory."""
    return [sys.executable, "-I", "-m", "runner.proxyd", *args]


def main(argv: list[str] | None = None) -> int:
    """``--parent-pid PID`` (coatcheck serve's own proxy): stop when that process dies."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "--parent-pid" and args[1].isdigit():
        from core.pids import die_with_parent

        die_with_parent(int(args[1]))
        args = args[2:]
    return service.main(args, open_values=open_vault_values)


if __name__ == "__main__":
    sys.exit(main())
