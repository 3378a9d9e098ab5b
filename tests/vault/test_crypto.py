from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import VaultCorrupt, VaultError
from tests.vault.helpers import SENTINEL
from vault import crypto
from vault.crypto import KEY_BYTES, NONCE_BYTES, Sealed
from vault.secret import SecretMeta, SecretValue

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = bytes(range(KEY_BYTES))
META = SecretMeta(
    name="GITHUB_TOKEN",
    domains=("api.github.com",),
    created=T0,
    updated=T0,
    surfaces=("header", "basic"),
    methods=("GET",),
    paths=("/repos/*",),
    placeholder_format="opaque",
)


def test_round_trip() -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    assert crypto.decrypt(KEY, META, sealed) == SecretValue(SENTINEL)


@given(value=st.text(min_size=1), name=st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True))
def test_round_trip_any_value(value: str, name: str) -> None:
    meta = dataclasses.replace(META, name=name)
    assert crypto.decrypt(KEY, meta, crypto.encrypt(KEY, meta, SecretValue(value))).reveal() == (
        value
    )


def test_fresh_nonce_per_encryption() -> None:
    sealed = [crypto.encrypt(KEY, META, SecretValue(SENTINEL)) for _ in range(50)]
    assert all(len(s.nonce) == NONCE_BYTES for s in sealed)
    assert len({s.nonce for s in sealed}) == 50
    assert len({s.ciphertext for s in sealed}) == 50


def test_ciphertext_does_not_contain_the_value() -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    assert SENTINEL.encode() not in sealed.ciphertext
    assert SENTINEL.encode() not in base64.b64encode(sealed.ciphertext)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "OTHER_TOKEN"},
        {"domains": ("api.github.com", "evil.example")},
        {"domains": ("evil.example",)},
        {"domains": ("*.github.com",)},
        {"surfaces": ("header", "basic", "query")},
        {"surfaces": ("basic", "header")},
        {"methods": ()},
        {"methods": ("GET", "POST")},
        {"paths": ()},
        {"paths": ("/*",)},
        {"placeholder_format": "shaped"},
    ],
    ids=[
        "name",
        "domain-added",
        "domain-swapped",
        "domain-widened",
        "surface-added",
        "surfaces-reordered",
        "methods-dropped",
        "method-added",
        "paths-dropped",
        "path-widened",
        "placeholder-format",
    ],
)
def test_edited_metadata_fails_authentication(change: dict[str, object]) -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    edited = dataclasses.replace(META, **change)  # type: ignore[arg-type]
    with pytest.raises(VaultCorrupt) as info:
        crypto.decrypt(KEY, edited, sealed)
    assert "failed authentication" in info.value.message
    assert SENTINEL not in info.value.message
    assert info.value.__cause__ is None  # cryptography's InvalidTag does not escape


def test_timestamps_are_not_bound() -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    later = dataclasses.replace(META, updated=T0 + timedelta(days=3))
    assert crypto.decrypt(KEY, later, sealed).reveal() == SENTINEL


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: Sealed(s.nonce, bytes([s.ciphertext[0] ^ 1]) + s.ciphertext[1:]),
        lambda s: Sealed(s.nonce, s.ciphertext[:-1] + bytes([s.ciphertext[-1] ^ 1])),
        lambda s: Sealed(bytes([s.nonce[0] ^ 1]) + s.nonce[1:], s.ciphertext),
        lambda s: Sealed(s.nonce, s.ciphertext[:-1]),
        lambda s: Sealed(s.nonce, b""),
    ],
    ids=["ciphertext-bit", "tag-bit", "nonce-bit", "truncated", "empty"],
)
def test_tampered_ciphertext_fails(tamper: object) -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    with pytest.raises(VaultCorrupt):
        crypto.decrypt(KEY, META, tamper(sealed))  # type: ignore[operator]


def test_wrong_nonce_length_is_corrupt() -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    with pytest.raises(VaultCorrupt):
        crypto.decrypt(KEY, META, Sealed(sealed.nonce + b"x", sealed.ciphertext))


def test_wrong_key_fails() -> None:
    sealed = crypto.encrypt(KEY, META, SecretValue(SENTINEL))
    with pytest.raises(VaultCorrupt):
        crypto.decrypt(crypto.generate_key(), META, sealed)


@pytest.mark.parametrize("size", [0, 16, 31, 33], ids=lambda n: f"{n}-bytes")
def test_key_must_be_256_bits(size: int) -> None:
    with pytest.raises(VaultError, match="32 bytes"):
        crypto.encrypt(b"k" * size, META, SecretValue("v"))


def test_generated_keys_are_random_and_256_bits() -> None:
    keys = {crypto.generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == KEY_BYTES for k in keys)


def test_key_id_is_stable_distinct_and_not_the_key() -> None:
    other = crypto.generate_key()
    assert crypto.key_id(KEY) == crypto.key_id(KEY)
    assert crypto.key_id(KEY) != crypto.key_id(other)
    assert KEY.hex()[:16] not in crypto.key_id(KEY)


def test_associated_data_is_canonical_and_names_every_bound_field() -> None:
    ad = crypto.associated_data(META)
    assert ad == crypto.associated_data(dataclasses.replace(META, updated=T0 + timedelta(1)))
    for text in (b"GITHUB_TOKEN", b"api.github.com", b"basic", b"GET", b"/repos/*", b"opaque"):
        assert text in ad
