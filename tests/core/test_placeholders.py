"""Placeholders: recognisable, unguessable, optionally shaped like the real token."""

from __future__ import annotations

import math
import re

import pytest

from core import placeholders
from core.errors import UsageError
from core.placeholders import PREFIX, is_opaque, mint, mint_shaped


def test_opaque_placeholders_are_prefixed_and_unique():
    made = {mint() for _ in range(2000)}
    assert len(made) == 2000
    assert all(p.startswith(PREFIX) and is_opaque(p) for p in made)


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("ghp_" + "aB3" * 12, "ghp_"),
        ("sk-ant-api03-" + "xY9_" * 20, "sk-ant-api03-"),
        (
            "xoxb-" + "1234567890-" * 2 + "AbCdEfGhIjKlMnOpQrStUvWxAbCdEfGh",
            "xoxb-1234567890-1234567890-",
        ),
    ],
)
def test_shaped_keeps_prefix_length_and_classes(value, prefix):
    ph = mint_shaped(value)
    assert ph != value and len(ph) == len(value) and ph.startswith(prefix)
    for a, b in zip(value[len(prefix) :], ph[len(prefix) :], strict=True):
        if a.isdigit():
            assert b.isdigit()
        elif re.match("[a-z]", a):
            assert re.match("[a-z]", b)


def test_shaped_refuses_short_tokens():
    with pytest.raises(UsageError, match="opaque"):
        mint_shaped("ghp_abc123")


def test_opaque_placeholders_carry_at_least_128_random_bits():
    alphabet = len(placeholders._ALPHABET)
    assert placeholders._RANDOM_CHARS * math.log2(alphabet) >= placeholders.MIN_BITS
