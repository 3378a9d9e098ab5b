"""Placeholders are per run, high entropy, with a recognizable prefix; optionally shaped like
the real token (same prefix and length) without giving away any of its characters."""

from __future__ import annotations

import math
import re
import string

import pytest

from core.errors import UsageError
from tests.conftest import client_for
from tests.security.conftest import API
from tests.support.upstream import only_received_with, tagged


def test_opaque_placeholder_is_prefixed_and_carries_128_bits(proxy, secret, canary):
    secret("FMT_TOKEN")
    runs = [proxy.register(("FMT_TOKEN",)) for _ in range(3)]
    phs = [r.placeholders["FMT_TOKEN"] for r in runs]
    for ph in phs:
        assert re.fullmatch(r"ccph_[A-Za-z0-9]+", ph)
        assert (len(ph) - len("ccph_")) * math.log2(62) >= 128
        assert canary not in ph
    assert len(set(phs)) == 3


def _shaped_value(canary: str) -> str:
    # ghp_ + 36 characters: the canary's hex core plus filler, mixed case and digits.
    core = canary.removeprefix("cc-canary-")
    return "ghp_" + (core + "AbCdEfGhIjKlMn")[:36]


def test_shaped_placeholder_keeps_prefix_and_length_but_no_characters(
    proxy, upstream, trail, canary, secret, tag
):
    value = _shaped_value(canary)
    secret("SHAPED_TOKEN", value=value, placeholder_format="shaped")
    a = proxy.register(("SHAPED_TOKEN",))
    b = proxy.register(("SHAPED_TOKEN",))
    ph = a.placeholders["SHAPED_TOKEN"]
    assert ph.startswith("ghp_") and len(ph) == len(value) and ph != value
    assert ph != b.placeholders["SHAPED_TOKEN"]
    for p_ch, v_ch in zip(ph[4:], value[4:], strict=True):
        cls = next(
            c for c in (string.digits, string.ascii_lowercase, string.ascii_uppercase) if v_ch in c
        )
        assert p_ch in cls
    body = value[4:]
    assert not any(body[i : i + 8] in ph for i in range(len(body) - 7)), "shares a run of 8"
    with client_for(a, proxy.ca_cert) as c:
        r = c.get(
            tagged(f"https://{API}:{upstream.port}/echo", tag),
            headers={"Authorization": f"token {ph}"},
        )
    assert only_received_with(upstream, tag).header("Authorization") == f"token {value}"
    assert r.json()["headers"]["Authorization"] == f"token {ph}"
    trail.assert_contained(value, may_reach=(API,), seen=(r.content,))


def test_shaped_placeholder_for_a_short_value_is_refused(proxy, secret):
    # Refused when it is vaulted, before any run could get a guessable placeholder.
    with pytest.raises(UsageError) as info:
        secret("SHORT_TOKEN", value="ghp_12345678", placeholder_format="shaped")
    assert "128" in info.value.message and "12345678" not in info.value.message
