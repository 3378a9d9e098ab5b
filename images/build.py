"""Build coatcheck's images from the recipes shipped beside this module; no registry is asked.

``base``: ``debootstrap`` a minimal Debian trixie on the host (it fetches Debian packages, the
one thing a build downloads), then ``docker import`` it. ``sandbox``: ``docker build`` of
``sandbox/Dockerfile`` ``FROM`` the local base, with the sandbox's PID 1 copied in.

Each image carries the digest of its recipe in a label: an image built from an older recipe
(after an upgrade of coatcheck) is *stale*. ``ensure`` (the first use, from ``coatcheck run``)
builds what is missing and rebuilds a stale sandbox image; ``build`` does what it is asked.
``claude-code`` (large) is built only when named: ``ensure`` reports it missing or stale instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import ImageMissing, SandboxError, UsageError

BASE = "coatcheck/base:trixie"
SANDBOX = "coatcheck/sandbox:latest"
LABEL_RECIPE = "org.coatcheck.recipe"
LABEL_IMAGE = "org.coatcheck.image"  # base | sandbox | agent | claude-code; FROM ours inherit it
SUITE = "trixie"
MIRROR_ENV = "COATCHECK_DEBIAN_MIRROR"
AGENT = "coatcheck/agent:latest"
CLAUDE_CODE = "coatcheck/claude-code:latest"
NAMES = ("base", "sandbox", "agent")  # what `coatcheck images build` builds by default
ON_REQUEST = ("claude-code",)  # built only when named (large)
ALL = NAMES + ON_REQUEST

Progress = Callable[[str], None]


class ImageBuildError(SandboxError):
    """An image could not be built; the message says what to install or fix."""


@dataclass(frozen=True)
class ImageState:
    name: str
    image: str
    state: str  # "missing" | "stale" | "current"

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "image": self.image, "state": self.state}


def _recipe(*parts: str) -> bytes:
    return resources.files("images").joinpath(*parts).read_bytes()


# sandbox/ files the image carries: init.py in /opt/coatcheck, the others in /opt/coatcheck/sandbox
INIT_FILES = ("init.py", "__init__.py", "names.py", "relay.py")


def _init_source(name: str = "init.py") -> bytes:
    return resources.files("sandbox").joinpath(name).read_bytes()


def base_packages() -> list[str]:
    text = _recipe("base", "packages.txt").decode()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def recipe_digest(name: str) -> str:
    """What an image of ``name`` is built from, as a short digest."""
    h = hashlib.sha256(name.encode() + b"\0")
    if name == "base":
        h.update(SUITE.encode() + b"\0" + "\n".join(base_packages()).encode())
    elif name == "sandbox":
        h.update(_recipe("sandbox", "Dockerfile"))
        for init_file in INIT_FILES:
            h.update(b"\0" + _init_source(init_file))
    elif name == "agent":
        from images import agent_image as agent

        h.update(recipe_digest("sandbox").encode() + b"\0")
        for part in agent.recipe_parts():
            h.update(part + b"\0")
    elif name == "claude-code":
        from images import claude_code_image as claude_code

        h.update(recipe_digest("sandbox").encode() + b"\0")
        for part in claude_code.recipe_parts():
            h.update(part + b"\0")
    else:
        raise UsageError(f"no image named {name!r}; the images are {', '.join(ALL)}")
    return h.hexdigest()[:16]


def image_of(name: str) -> str:
    return {"base": BASE, "sandbox": SANDBOX, "agent": AGENT, "claude-code": CLAUDE_CODE}[name]


def status(engine: Any, names: Iterable[str] = ALL) -> list[ImageState]:
    out = []
    for name in names:
        labels = engine.image_labels(image_of(name))
        if labels is None:
            state = "missing"
        elif labels.get(LABEL_RECIPE) != recipe_digest(name):
            state = "stale"
        else:
            state = "current"
        out.append(ImageState(name, image_of(name), state))
    return out


def build(
    names: Iterable[str], *, engine: Any, progress: Progress, force: bool = False
) -> list[str]:
    """Build ``names`` (and a missing base under the sandbox); return what was built.

    Without ``force`` an image that is current is left alone; ``sandbox`` is built first when
    an image FROM it is wanted and it is not current, and rebuilt when its base was; an image
    FROM the sandbox that exists is rebuilt when the sandbox was.
    """
    wanted = [n for n in ALL if n in set(names)]
    for n in names:
        recipe_digest(n)  # UsageError for an unknown name
    built: list[str] = []
    current = {s.name: s.state == "current" for s in status(engine)}
    if "base" in wanted and (force or not current["base"]) or not _exists(engine, BASE):
        _build_base(engine, progress)
        built.append("base")
    rebuild_on_new_base = bool(built) and _exists(engine, SANDBOX)
    needs_sandbox = not current["sandbox"] and bool({"agent", "claude-code"} & set(wanted))
    if (
        "sandbox" in wanted
        and (force or built or not current["sandbox"])
        or rebuild_on_new_base
        or needs_sandbox
    ):
        _build_sandbox(engine, progress)
        built.append("sandbox")
    rebuild_on_new_sandbox = "sandbox" in built and _exists(engine, AGENT)
    if "agent" in wanted and (force or built or not current["agent"]) or rebuild_on_new_sandbox:
        from images import agent_image as agent

        agent.build_agent(engine, progress, labels={LABEL_RECIPE: recipe_digest("agent")})
        built.append("agent")
    rebuild_cc = "sandbox" in built and _exists(engine, CLAUDE_CODE)
    if (
        "claude-code" in wanted
        and (force or "sandbox" in built or not current["claude-code"])
        or rebuild_cc
    ):
        from images import claude_code_image as claude_code

        labels = {LABEL_RECIPE: recipe_digest("claude-code")}
        claude_code.build_claude_code(engine, progress, labels=labels)
        built.append("claude-code")
    for n in wanted:
        if n not in built:
            progress(f"{n}: {image_of(n)} is up to date")
    return built


def ensure(image: str, *, engine: Any, progress: Progress) -> None:
    """Before a run: build coatcheck's own image when it is missing or stale (first use, or
    after an upgrade). Other images are the user's: a missing one is reported by the run.
    The claude-code image is large and built only on request: missing or stale, it is refused
    with the command that builds it."""
    if image == CLAUDE_CODE:
        state = status(engine, ["claude-code"])[0].state
        fix = "build it with `coatcheck images build claude-code` (about 180 MB to fetch)"
        if state == "missing":
            raise ImageMissing(f"{CLAUDE_CODE} is not built (it is built only on request): {fix}")
        if state == "stale":
            raise ImageMissing(f"{CLAUDE_CODE} was built by another coatcheck version: re{fix}")
        return
    names = {SANDBOX: ["sandbox"], AGENT: ["sandbox", "agent"]}.get(image)
    if names is None:
        return
    for name in names:  # in order; asked afresh, as building the sandbox rebuilds an agent image
        state = status(engine, [name])[0].state
        if state == "current":
            continue
        why = "is not built yet" if state == "missing" else "was built by another coatcheck version"
        progress(f"{image_of(name)} {why}; building it now (`coatcheck images build`)")
        build([name], engine=engine, progress=progress)


def _exists(engine: Any, image: str) -> bool:
    return engine.image_labels(image) is not None


# -- base: debootstrap + docker import ---------------------------------------------------
STAGES = ("Retrieving", "Validating", "Extracting", "Unpacking", "Configuring", "Installing")


def _build_base(engine: Any, progress: Progress) -> None:
    exe = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None
    )
    if exe is None:
        raise ImageBuildError(
            "building the base image needs debootstrap: install it (`apt-get install -y "
            "debootstrap`), then run `coatcheck images build` again"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "debootstrap needs root to build the base image: run `sudo coatcheck images build` "
            "once; later runs reuse the image"
        )
    mirror = os.environ.get(MIRROR_ENV, "")
    progress(f"base: debootstrapping Debian {SUITE} (a minute or two)")
    with tempfile.TemporaryDirectory(prefix="coatcheck-base-") as tmp:
        root = Path(tmp) / "root"
        argv = [exe, "--variant=minbase", f"--include={','.join(base_packages())}", SUITE,
                str(root)] + ([mirror] if mirror else [])  # fmt: skip
        seen: set[str] = set()
        _stream(argv, lambda line: _stage(line, progress, seen), what="debootstrap")
        _trim(root)
        progress("base: importing the root file system into Docker")
        tarball = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."],
                       check=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LABEL org.coatcheck.image=base",
            f"LABEL {LABEL_RECIPE}={recipe_digest('base')}",
        ]
        engine.import_rootfs(tarball, BASE, changes)
    progress(f"base: built {BASE}")


def _stage(line: str, progress: Progress, seen: set[str]) -> None:
    """debootstrap prints a line per package; show one line per stage."""
    word = line[3:].split(" ", 1)[0] if line.startswith("I: ") else ""
    if word in STAGES and word not in seen:
        seen.add(word)
        progress(f"base: {word.lower()} packages")


def _stream(argv: list[str], on_line: Progress, *, what: str) -> None:
    tail: list[str] = []
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None  # noqa: S101
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-15:]
            on_line(line.rstrip())
    if proc.returncode != 0:
        raise ImageBuildError(
            f"{what} failed (exit {proc.returncode}); its last lines:\n" + "\n".join(tail)
        )


def _trim(root: Path) -> None:
    """Remove what a sandbox never needs: package caches, docs, man pages, locales."""
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                "usr/share/info"):  # fmt: skip
        d = root / rel
        if d.is_dir():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name != "lock":
                    child.unlink(missing_ok=True)
    locale = root / "usr/share/locale"
    if locale.is_dir():
        for child in locale.iterdir():
            if child.name != "locale.alias":
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


# -- sandbox: docker build FROM the local base -------------------------------------------
def _build_sandbox(engine: Any, progress: Progress) -> None:
    progress(f"sandbox: building {SANDBOX} from {BASE}")
    with tempfile.TemporaryDirectory(prefix="coatcheck-sandbox-") as ctx:
        Path(ctx, "Dockerfile").write_bytes(_recipe("sandbox", "Dockerfile"))
        Path(ctx, "sandbox").mkdir()
        for init_file in INIT_FILES:
            where = Path(ctx) if init_file == "init.py" else Path(ctx, "sandbox")
            where.joinpath(init_file).write_bytes(_init_source(init_file))
        engine.build_image(
            Path(ctx),
            SANDBOX,
            labels={LABEL_RECIPE: recipe_digest("sandbox")},
            on_line=lambda line: progress(f"sandbox: {line}") if line.startswith("Step") else None,
        )
    progress(f"sandbox: built {SANDBOX}")
