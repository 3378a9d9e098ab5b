"""Less to find inside a sandbox: no setuid/setgid programs, and no host path of the user's
state (COATCHECK_HOME) in what the sandbox can read of its mounts or environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sandbox.helpers import Home, coatcheck

pytestmark = pytest.mark.docker


def test_the_image_has_no_setuid_or_setgid_programs(tmp_path: Path) -> None:
    r = coatcheck(Home(tmp_path), "run", "--", "sh", "-c",
                  "find / -xdev -perm /6000 -type f 2>/dev/null; echo done")  # fmt: skip
    assert r.code == 0, r
    assert r.stdout.split() == ["done"], r.stdout


def test_mounts_and_environment_name_no_path_under_coatcheck_home(tmp_path: Path) -> None:
    home = Home(tmp_path / "operator-state-dir")
    r = coatcheck(home, "run", "--", "sh", "-c",
                  "cat /proc/self/mountinfo /proc/1/mountinfo; env; echo done")  # fmt: skip
    assert r.code == 0, r
    assert "/run/coatcheck" in r.stdout  # the mounts were read
    assert "operator-state-dir" not in r.stdout, r.stdout
    assert str(home.path) not in r.stdout
