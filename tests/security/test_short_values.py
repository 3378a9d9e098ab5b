"""Values too short to scrub safely are refused at ``vault set``.

Attack: a value of a few bytes occurs in ordinary responses by chance and is rebuilt from a few
guesses, and Basic-auth values under 6 bytes got no base64 forms to scrub at all. Values under 8
bytes are refused, with the reason, and nothing is stored or echoed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.security.conftest import API
from vault.store import Vault


@pytest.mark.parametrize(
    "value", ["s3cr3t", "pass123", "zq", "ключ"], ids=["6", "7", "2", "8-utf8"]
)
def test_short_values_are_refused_by_the_cli_with_the_reason(tmp_path, value):
    out = subprocess.run(
        [sys.executable, "-I", "-m", "runner.cli", "vault", "set", "SHORT", "--domains", API],
        input=value.encode() + b"\n",
        capture_output=True,
        timeout=60,
    )
    if len(value.encode()) >= 8:
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode == 2
    assert b"at least 8" in out.stderr
    assert value.encode() not in out.stdout + out.stderr
    assert Vault.open(tmp_path / "home").list() == []
