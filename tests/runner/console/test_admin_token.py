"""The admin token: 256 random bits, shown once; only its SHA-256 is kept, mode 0600."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from runner.console.admin_token import admin_token_hash, new_admin_token, token_file
from runner.serve.tokens import token_hash, token_matches


def test_a_new_token_keeps_only_its_hash(tmp_path: Path) -> None:
    token = new_admin_token(tmp_path)
    assert re.fullmatch(r"ccadm_[A-Za-z0-9_-]{43}", token)
    path = token_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text()
    assert admin_token_hash(tmp_path) == token_hash(token)
    assert token_matches(token, admin_token_hash(tmp_path))


def test_a_new_token_replaces_the_old(tmp_path: Path) -> None:
    old = new_admin_token(tmp_path)
    new = new_admin_token(tmp_path)
    assert old != new
    assert not token_matches(old, admin_token_hash(tmp_path))
    assert [p.name for p in path_dir(tmp_path).iterdir()] == ["console-token.sha256"]


def path_dir(home: Path) -> Path:
    return token_file(home).parent


def test_no_file_no_hash(tmp_path: Path) -> None:
    assert admin_token_hash(tmp_path) is None


def test_a_symlink_or_garbage_is_no_hash(tmp_path: Path) -> None:
    token = new_admin_token(tmp_path)
    path = token_file(tmp_path)
    real = tmp_path / "elsewhere"
    real.write_text(token_hash(token))
    path.unlink()
    os.symlink(real, path)
    assert admin_token_hash(tmp_path) is None
    path.unlink()
    path.write_text("not a hash\n")
    assert admin_token_hash(tmp_path) is None
