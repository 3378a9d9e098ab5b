"""Per-deployment API tokens for `POST /v1/deployments/{name}/run` (pure).

A token is ``cctr_`` followed by 256 bits from the OS random source (urlsafe base64, 43
characters). The prefix makes a leaked token recognisable to secret scanners and to people.
It is shown once; only its SHA-256 is stored.

A fast, unsalted hash is enough here: with 256 bits of randomness a token can't be guessed
or brute-forced from its hash, so the key stretching that passwords need (bcrypt, scrypt)
buys nothing and would only slow every API call. Comparison is in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "cctr_"
TOKEN_BYTES = 32  # 256 bits

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token; we allow exactly one space.
_BEARER = re.compile(r"Bearer ([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


def new_token() -> str:
    """A fresh API token: ``cctr_`` + 256 random bits, urlsafe base64 without padding."""
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of a token: SHA-256 of its UTF-8 bytes, 64 lowercase hex characters."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str | None, stored_hash: str | None) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, compared in constant time.

    Fails closed: no token, no stored hash (a deployment without a token, or a revoked one)
    or an empty one never match."""
    if not token or not stored_hash:
        return False
    given = token_hash(token).encode("ascii")
    return hmac.compare_digest(given, stored_hash.encode("utf-8", "surrogatepass"))


def bearer(header_value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None.

    Strict: the scheme is ``Bearer`` in any case, then exactly one space, then an RFC 6750
    b64token and nothing else. Other schemes (Basic, Token), a missing or empty token, extra
    spaces or parameters give None."""
    if header_value is None:
        return None
    found = _BEARER.fullmatch(header_value)
    return found.group(1) if found else None
