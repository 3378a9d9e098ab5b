"""The agent image: the sandbox image plus the Anthropic SDK and coatcheck's agent loop.

The SDK's wheels (Python 3.13, this machine's architecture, pinned in
``agent/requirements.txt``) are fetched on the host by pip and unpacked into the build context:
nothing is downloaded inside the build and no registry but the package index is asked. The loop
(``runner/agent``, standard library and SDK only) is copied in beside them, with a launcher that
puts both on ``sys.path``.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import SandboxError

IMAGE = "coatcheck/agent:latest"
PYTHON = "3.13"  # Debian trixie's python3, in the sandbox image
LAUNCHER = b"""import runpy, sys
sys.path[:0] = ["/opt/coatcheck/agent", "/opt/coatcheck/agent/site"]
runpy.run_module("runner.agent", run_name="__main__", alter_sys=True)
"""


def _sources() -> dict[str, bytes]:
    pkg = resources.files("runner.agent")
    return {
        f"runner/agent/{p.name}": p.read_bytes()
        for p in sorted(pkg.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".py")
    }


def recipe_parts() -> list[bytes]:
    recipe = resources.files("images").joinpath("agent")
    parts = [
        recipe.joinpath("Dockerfile").read_bytes(),
        recipe.joinpath("requirements.txt").read_bytes(),
    ]
    return parts + [name.encode() + b"\0" + data for name, data in _sources().items()] + [LAUNCHER]


def _pip() -> list[str]:
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    raise SandboxError(
        "building the agent image needs pip on the host to fetch the SDK's wheels: install "
        "pip (`apt-get install python3-pip`), then run `coatcheck images build agent` again"
    )


def fetch_wheels(into: Path, progress: Callable[[str], None]) -> list[Path]:
    machine = platform.machine()
    reqs = resources.files("images").joinpath("agent", "requirements.txt")
    with resources.as_file(reqs) as req_file:
        argv = [*_pip(), "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", PYTHON, "--implementation", "cp",
                "--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_28_{machine}",
                "-r", str(req_file), "-d", str(into)]  # fmt: skip
        progress(f"agent: fetching the Anthropic SDK's wheels for Python {PYTHON} ({machine})")
        done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SandboxError(f"pip could not fetch the agent's wheels:\n{done.stderr[-2000:]}")
    return sorted(into.glob("*.whl"))


def unpack(wheels: list[Path], site: Path) -> None:
    """A wheel is a zip of what goes into site-packages: unpack it there (no pip in the image)."""
    site.mkdir(parents=True, exist_ok=True)
    root = site.resolve()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                target = (site / name).resolve()
                if root not in target.parents:
                    raise SandboxError(f"{wheel.name}: member {name!r} leaves the directory")
            z.extractall(site)


def build_agent(engine: Any, progress: Callable[[str], None], *, labels: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="coatcheck-agent-") as tmp:
        ctx = Path(tmp)
        unpack(fetch_wheels(ctx / "wheels", progress), ctx / "site")
        shutil.rmtree(ctx / "wheels")
        recipe = resources.files("images").joinpath("agent")
        (ctx / "Dockerfile").write_bytes(recipe.joinpath("Dockerfile").read_bytes())
        (ctx / "main.py").write_bytes(LAUNCHER)
        (ctx / "runner").mkdir()
        (ctx / "runner" / "__init__.py").write_bytes(b"")
        for name, data in _sources().items():
            (ctx / name).parent.mkdir(parents=True, exist_ok=True)
            (ctx / name).write_bytes(data)
        progress(f"agent: building {IMAGE}")
        engine.build_image(
            ctx, IMAGE, labels=labels,
            on_line=lambda line: progress(f"agent: {line}") if line.startswith("Step") else None,
        )  # fmt: skip
    progress(f"agent: built {IMAGE}")
