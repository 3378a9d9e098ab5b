"""The shared secret of a deployment's GitHub webhook (pure).

`coatcheck deployments webhook NAME` prints it once and stores it in the vault; GitHub signs
every delivery with it (see `runner.serve.github.signature_ok`).
"""

from __future__ import annotations

import secrets

SECRET_BYTES = 32


def new_webhook_secret() -> str:
    """A fresh webhook secret: 32 random bytes as 64 lowercase hex characters."""
    return secrets.token_hex(SECRET_BYTES)
