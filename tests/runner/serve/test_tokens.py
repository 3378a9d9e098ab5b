"""API tokens: format, hashing, constant-time match and strict Bearer parsing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from runner.serve.tokens import PREFIX, bearer, new_token, token_hash, token_matches


def test_a_token_has_the_prefix_and_256_random_bits():
    token = new_token()
    assert PREFIX == "cctr_" and token.startswith(PREFIX)
    body = token.removeprefix(PREFIX)
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert bearer(f"Bearer {token}") == token  # a token is a valid b64token


def test_tokens_do_not_repeat():
    assert len({new_token() for _ in range(1000)}) == 1000


def test_the_hash_is_sha256_hex_and_not_the_token():
    token = new_token()
    stored = token_hash(token)
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert len(stored) == 64 and token not in stored


def test_a_token_matches_its_own_hash_only():
    token, other = new_token(), new_token()
    assert token_matches(token, token_hash(token))
    assert not token_matches(other, token_hash(token))
    assert not token_matches(token[:-1], token_hash(token))


@pytest.mark.parametrize(
    ("token", "stored"),
    [("", token_hash("")), (None, token_hash("x")), ("x", None), ("x", ""), ("x", "é" * 64)],
    ids=["empty-token", "no-token", "no-hash-revoked", "empty-hash", "non-ascii-hash"],
)
def test_matching_fails_closed(token, stored):
    assert token_matches(token, stored) is False


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer cctr_abc-_123", "cctr_abc-_123"),
        ("bearer cctr_abc", "cctr_abc"),
        ("BEARER cctr_abc", "cctr_abc"),
        ("Bearer abc+/==", "abc+/=="),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Bearer  cctr_abc", None),
        ("Bearer cctr_abc ", None),
        (" Bearer cctr_abc", None),
        ("Bearer cctr_abc\n", None),
        ("Bearer\tcctr_abc", None),
        ("Bearer a b", None),
        ("Bearer a=b", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token cctr_abc", None),
        ("cctr_abc", None),
        ("Bearer cctr_é", None),
    ],
    ids=[
        "canonical", "lowercase-scheme", "uppercase-scheme", "b64-padding", "missing", "empty",
        "scheme-only", "empty-token", "two-spaces", "trailing-space", "leading-space",
        "trailing-newline", "tab", "two-tokens", "padding-inside", "basic", "token-scheme",
        "no-scheme", "non-ascii",
    ],
)  # fmt: skip
def test_bearer_parsing_is_strict(header, expected):
    assert bearer(header) == expected
