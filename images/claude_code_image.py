"""The claude-code image: the sandbox image plus the native ``claude`` executable and coatcheck's
wrapper around it (``runner/agent``, entry ``cc_main.py``).

The executable ships inside the ``claude-agent-sdk`` wheel. pip fetches the pinned wheel on the
host (``claude_code/pin.txt``; the registry and its CA are pip's own settings, as for the agent
image), the wheel's sha256 is checked, only ``claude_agent_sdk/_bundled/claude`` is extracted and
its sha256 checked too; then ``docker build`` copies it in. Nothing is downloaded inside the build.
A verified wheel is kept in a cache keyed by version and digest, so a rebuild fetches nothing.
Built only on request (``coatcheck images build claude-code``): it is large.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import SandboxError
from images import agent_image as agent
from images.build import ImageBuildError

IMAGE = "coatcheck/claude-code:latest"
MEMBER = "claude_agent_sdk/_bundled/claude"
PIN_FILE = "images/claude_code/pin.txt"
CHUNK = 1 << 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Pin:
    """One release of the ``claude`` executable, as ``pin.txt`` names it."""

    package: str
    version: str
    wheel: str
    wheel_bytes: int
    wheel_sha256: str
    claude_bytes: int
    claude_sha256: str
    claude_version: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def platform(self) -> str:
        """The wheel's platform tag, e.g. ``manylinux_2_17_x86_64``."""
        return self.wheel.removesuffix(".whl").rsplit("-", 1)[-1]


def parse_pin(text: str) -> Pin:
    """``key = value`` lines (``#`` comments) into a Pin; a bad line fails with its number."""
    found: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not value.strip():
            raise ImageBuildError(f"{PIN_FILE} line {n}: expected `key = value`, got {line!r}")
        found[key.strip()] = value.strip()
    names = [f.name for f in fields(Pin)]
    if missing := [k for k in names if k not in found]:
        raise ImageBuildError(f"{PIN_FILE} lacks {', '.join(missing)}")
    for key in ("wheel_sha256", "claude_sha256"):
        if not re.fullmatch(r"[0-9a-f]{64}", found[key]):
            raise ImageBuildError(f"{PIN_FILE}: {key} must be 64 lowercase hex digits")
    for key in ("wheel_bytes", "claude_bytes"):
        if not found[key].isdigit():
            raise ImageBuildError(f"{PIN_FILE}: {key} must be a number of bytes")
    return Pin(**{k: int(found[k]) if k.endswith("_bytes") else found[k] for k in names})  # type: ignore[arg-type]


def _recipe(name: str) -> bytes:
    return resources.files("images").joinpath("claude_code", name).read_bytes()


def load_pin() -> Pin:
    return parse_pin(_recipe("pin.txt").decode())


def recipe_parts() -> list[bytes]:
    """What the image is built from (its recipe digest hashes these, after the sandbox's)."""
    parts = [_recipe("Dockerfile"), _recipe("pin.txt"), _recipe("cc_main.py")]
    return parts + [name.encode() + b"\0" + data for name, data in agent._sources().items()]


def _step(line: str, progress: Progress) -> None:
    if line.startswith("Step"):
        progress(f"claude-code: {line}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def check_digest(what: str, got: str, expected: str) -> None:
    """Refuse anything but the pinned bytes, naming both digests and the fix."""
    if got != expected:
        raise ImageBuildError(
            f"{what} has sha256 {got}, but {PIN_FILE} pins {expected}: this is not the pinned "
            "release (a changed or tampered download, or a stale pin), so nothing was built. "
            "Check the registry pip uses; to move to a new release, update every line of the pin"
        )


def extract_claude(wheel: Path, dest: Path, pin: Pin) -> None:
    """Only the executable leaves the wheel, hashed as it is written; mode 0755."""
    with zipfile.ZipFile(wheel) as z:
        try:
            info = z.getinfo(MEMBER)
        except KeyError:
            raise ImageBuildError(f"{wheel.name} has no {MEMBER}; check {PIN_FILE}") from None
        h = hashlib.sha256()
        with z.open(info) as src, dest.open("wb") as out:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    try:
        check_digest(f"{MEMBER} in {wheel.name}", h.hexdigest(), pin.claude_sha256)
    except ImageBuildError:
        dest.unlink()
        raise
    dest.chmod(0o755)


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """``$COATCHECK_HOME/cache`` when set, else ``$XDG_CACHE_HOME/coatcheck`` (~/.cache)."""
    env = os.environ if environ is None else environ
    if env.get("COATCHECK_HOME"):
        return Path(env["COATCHECK_HOME"]).expanduser() / "cache"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coatcheck"


def fetch_wheel(pin: Pin, progress: Progress, *, cache: Path) -> Path:
    """The pinned wheel, from the cache or from pip (then cached once it checks out)."""
    slot = cache / "claude-code" / f"{pin.version}-{pin.wheel_sha256[:16]}"
    wheel = slot / pin.wheel
    if wheel.is_file():
        if sha256_of(wheel) == pin.wheel_sha256:
            progress(f"claude-code: using the cached {pin.wheel} ({_mb(pin.wheel_bytes)})")
            return wheel
        wheel.unlink()  # a damaged cache entry: fetch it again
    try:
        pip = agent._pip()
    except SandboxError:
        raise ImageBuildError(
            "building the claude-code image needs pip on the host to fetch the claude-agent-sdk "
            "wheel: install pip (`apt-get install python3-pip`), then run `coatcheck images "
            "build claude-code` again"
        ) from None
    slot.mkdir(parents=True, exist_ok=True)
    progress(
        f"claude-code: fetching {pin.requirement} ({_mb(pin.wheel_bytes)}, holds claude "
        f"{pin.claude_version}) with pip"
    )
    with tempfile.TemporaryDirectory(dir=slot, prefix=".fetch-") as tmp:
        argv = [*pip, "download", "--no-deps", "--only-binary=:all:", "--progress-bar", "off",
                "--platform", pin.platform, "--python-version", agent.PYTHON,
                "--dest", tmp, pin.requirement]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise ImageBuildError(
                f"pip could not fetch {pin.requirement} (exit {done.returncode}); check its "
                f"registry settings (index URL, proxy, CA):\n{done.stderr[-2000:]}"
            )
        got = Path(tmp) / pin.wheel
        if not got.is_file():
            names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise ImageBuildError(f"pip fetched {names}, not {pin.wheel}; check {PIN_FILE}")
        progress(f"claude-code: verifying {pin.wheel} ({_mb(got.stat().st_size)})")
        check_digest(pin.wheel, sha256_of(got), pin.wheel_sha256)
        got.replace(wheel)
    return wheel


Fetch = Callable[..., Path]


def build_claude_code(
    engine: Any,
    progress: Progress,
    *,
    labels: dict[str, str],
    pin: Pin | None = None,
    cache: Path | None = None,
    fetch: Fetch = fetch_wheel,
) -> None:
    pin = pin or load_pin()
    machine = platform.machine()
    if not pin.platform.endswith(f"_{machine}"):
        raise ImageBuildError(
            f"{PIN_FILE} pins a {pin.platform} build of claude; this machine is {machine}: pin "
            f"the {machine} wheel of {pin.requirement} to build the claude-code image here"
        )
    wheel = fetch(pin, progress, cache=cache or cache_dir())
    check_digest(pin.wheel, sha256_of(wheel), pin.wheel_sha256)
    with tempfile.TemporaryDirectory(prefix="coatcheck-claude-code-") as tmp:
        ctx = Path(tmp)
        progress(f"claude-code: extracting claude {pin.claude_version} ({_mb(pin.claude_bytes)})")
        extract_claude(wheel, ctx / "claude", pin)
        (ctx / "Dockerfile").write_bytes(_recipe("Dockerfile"))
        (ctx / "cc_main.py").write_bytes(_recipe("cc_main.py"))
        (ctx / "runner").mkdir()
        (ctx / "runner" / "__init__.py").write_bytes(b"")
        for name, data in agent._sources().items():
            (ctx / name).parent.mkdir(parents=True, exist_ok=True)
            (ctx / name).write_bytes(data)
        progress(f"claude-code: building {IMAGE} (sending {_mb(pin.claude_bytes)} to Docker)")
        engine.build_image(ctx, IMAGE, labels=labels, on_line=lambda line: _step(line, progress))
    progress(f"claude-code: built {IMAGE}")
