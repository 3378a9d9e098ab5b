"""The console's admin token (``coatcheck serve token``): shown once, only its hash is kept.

A token is ``ccadm_`` followed by 256 bits from the OS random source; its SHA-256 (64 hex
characters, as ``runner.serve.tokens.token_hash`` computes it) is written to
``$COATCHECK_HOME/serve/console-token.sha256``, mode 0600. A new token replaces the old one:
the old token stops working at once, and so do the console sessions it opened.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Final

from core.home import ensure_private_dir
from runner.serve.tokens import token_hash

PREFIX: Final = "ccadm_"
TOKEN_BYTES: Final = 32  # 256 bits
FILE: Final = Path("serve") / "console-token.sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def token_file(home: Path) -> Path:
    return home / FILE


def new_admin_token(home: Path) -> str:
    """A fresh admin token; its hash replaces the stored one (atomically, mode 0600)."""
    token = PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    path = token_file(home)
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token_hash(token) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return token


def admin_token_hash(home: Path) -> str | None:
    """The stored hash, or None when there is none (or the file is not one we wrote)."""
    path = token_file(home)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        text = f.read(200).strip()
    return text if _HEX64.fullmatch(text) else None
