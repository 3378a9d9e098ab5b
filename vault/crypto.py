"""Authenticated encryption of one secret value, bound to its name and metadata.

AES-256-GCM with a fresh random 96-bit nonce per encryption. The associated data is a
canonical encoding of the secret's name, domains, surfaces, methods, paths and placeholder
format, so a vault file whose metadata was edited (say, a domain added) fails to decrypt
instead of sending the value somewhere new. cryptography's ``InvalidTag`` is translated to
``VaultCorrupt`` here and never escapes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import VaultCorrupt, VaultError
from vault.secret import SecretMeta, SecretValue

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
_AD_CONTEXT: Final = "coatcheck-vault-secret-v1"
_KEY_ID_CONTEXT: Final = b"coatcheck-vault-key-id-v1"


@dataclass(frozen=True, slots=True)
class Sealed:
    """A nonce and the ciphertext (with its 16-byte GCM tag) of one secret value."""

    nonce: bytes
    ciphertext: bytes


def generate_key() -> bytes:
    """A new random 256-bit vault key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def key_id(key: bytes) -> str:
    """A short fingerprint of ``key`` that reveals nothing about it, to tell keys apart."""
    _check_key(key)
    return hmac.new(key, _KEY_ID_CONTEXT, hashlib.sha256).hexdigest()[:16]


def associated_data(meta: SecretMeta) -> bytes:
    """The canonical bytes that bind a ciphertext to ``meta`` (timestamps excluded)."""
    bound = {
        "context": _AD_CONTEXT,
        "name": meta.name,
        "domains": list(meta.domains),
        "surfaces": list(meta.surfaces),
        "methods": list(meta.methods),
        "paths": list(meta.paths),
        "placeholder_format": meta.placeholder_format,
    }
    return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode("utf-8")


def encrypt(key: bytes, meta: SecretMeta, value: SecretValue) -> Sealed:
    """Encrypt ``value`` under ``key``, bound to ``meta``."""
    _check_key(key)
    nonce = os.urandom(NONCE_BYTES)
    plaintext = value.reveal().encode("utf-8")
    return Sealed(nonce, AESGCM(key).encrypt(nonce, plaintext, associated_data(meta)))


def decrypt(key: bytes, meta: SecretMeta, sealed: Sealed) -> SecretValue:
    """Decrypt ``sealed``; raise VaultCorrupt if it, ``meta`` or ``key`` don't match."""
    _check_key(key)
    if len(sealed.nonce) != NONCE_BYTES:
        raise VaultCorrupt(f"secret {meta.name}: the stored nonce has the wrong length")
    try:
        plaintext = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, associated_data(meta))
    except InvalidTag:
        raise VaultCorrupt(
            f"secret {meta.name} failed authentication: its stored metadata (domains, "
            "surfaces, methods, paths) or ciphertext was modified outside coatcheck. "
            f"Store it again with `coatcheck vault set {meta.name} --domains ...`"
        ) from None
    try:
        return SecretValue(plaintext.decode("utf-8"))
    except UnicodeDecodeError:
        raise VaultCorrupt(f"secret {meta.name}: the decrypted value is not UTF-8") from None


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise VaultError(f"the vault key must be {KEY_BYTES} bytes, not {len(key)}")
