"""coatcheck works as an installed tool, wherever the user stands.

- Children of the CLI (the proxy service) resolve the installed packages, not a ``proxy/`` (or
  ``runner/``, ``vault/``, ``sandbox/``, ``core/``, ``images/``) package in the current directory.
- ``uv tool install`` (the same isolated install as ``pipx install``) of the source tree gives a
  ``coatcheck`` that finds its image recipes as package data and runs a sandbox from a fresh
  directory; the demo and trustme stay out of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox.helpers import Home

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DECOYS = ("proxy", "runner", "vault", "sandbox", "core", "images")
# A plain-HTTP request to a name no run allows: only a running proxy answers it (403).
# The environment this test module was imported in, before the autouse fixture cleared the trust
# variables: installing from the package registry needs this machine's CA settings.
MACHINE_ENV = dict(os.environ)
REFUSED_PROBE = "curl -sS -o /dev/null -w 'status=%{http_code}\\n' http://refused.test/"


def plant_decoys(where: Path) -> Path:
    """Packages named like ours that record being imported and then fail."""
    marker = where / "decoy-imported"
    for name in DECOYS:
        (where / name).mkdir()
        (where / name / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n"
            f"raise ImportError('decoy {name} imported from the current directory')\n"
        )
    return marker


def run_in(cwd: Path, exe: list[str], home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, *args], cwd=cwd, env=home.env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_run_from_a_directory_with_decoy_packages_uses_the_installed_ones(tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    marker = plant_decoys(work)
    coatcheck = str(Path(sys.executable).parent / "coatcheck")
    home = Home(tmp_path)
    r = run_in(work, [coatcheck], home, "run", "--", "sh", "-c", REFUSED_PROBE)
    assert r.returncode == 0, r
    assert "status=403" in r.stdout, r  # the ephemeral proxy started and answered
    assert not marker.exists(), marker.read_text()


def test_proxy_service_child_ignores_pythonpath_and_cwd(tmp_path: Path) -> None:
    """`python -I`: neither the current directory nor PYTHONPATH can shadow our packages."""
    marker = plant_decoys(tmp_path)
    from runner import proxyd

    argv = proxyd.command("--help")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "--ephemeral" in r.stdout
    assert not marker.exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``uv tool install`` of this source tree into a private tool directory."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed: it is in the dev extra; run `make venv`")
    where = tmp_path_factory.mktemp("tool")
    env = dict(MACHINE_ENV, UV_TOOL_DIR=str(where / "tools"), UV_TOOL_BIN_DIR=str(where / "bin"))
    r = subprocess.run(
        [uv, "tool", "install", "--python", sys.executable, "--constraints",
         str(ROOT / "requirements.lock"), str(ROOT)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return where


def test_installed_tool_finds_its_image_recipes(installed: Path, tmp_path: Path) -> None:
    exe = [str(installed / "bin" / "coatcheck")]
    r = run_in(tmp_path, exe, Home(tmp_path), "images", "list", "--json")
    assert r.returncode == 0, r.stderr
    states = {s["name"]: s["state"] for s in json.loads(r.stdout)}
    # `make images` built them from this tree: the installed recipes must hash the same.
    assert {n: states[n] for n in ("base", "sandbox", "agent")} == dict.fromkeys(
        ("base", "sandbox", "agent"), "current"
    )
    assert "claude-code" in states  # built on request only: listed whatever its state


def test_installed_tool_runs_a_sandbox_from_a_fresh_directory(installed: Path, tmp_path: Path):
    work = tmp_path / "fresh"
    work.mkdir()
    exe = [str(installed / "bin" / "coatcheck")]
    r = run_in(work, exe, Home(tmp_path), "run", "--", "sh", "-c", "echo inside; " + REFUSED_PROBE)
    assert r.returncode == 0, r
    assert "inside" in r.stdout and "status=403" in r.stdout, r
    r = run_in(work, exe, Home(tmp_path), "run", "--", "true")
    assert r.returncode == 0, r


def test_installed_tool_ships_no_demo_or_test_helpers(installed: Path) -> None:
    site = next((installed / "tools" / "coatcheck").glob("lib/python3*/site-packages"))
    shipped = {p.relative_to(site).as_posix() for p in site.glob("*/**/*.py")}
    ours = {p for p in shipped if p.split("/")[0] in DECOYS}
    assert ours, "no coatcheck package was installed"
    assert not any("demo" in p for p in ours)
    assert not (site / "trustme").exists()
    assert not (site / "tests").exists() and not (site / "examples").exists()
    assert (site / "images" / "sandbox" / "Dockerfile").is_file()
