"""The claude-code image: the pin and its digest checks, the build decisions (an in-memory fake of
the Docker adapter, a fake wheel), and the real build, run in a locked-down container (Docker)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from core.errors import ImageMissing
from images import build
from images import claude_code_image as cc
from images.build import ImageBuildError
from runner import cli_images
from tests.images.test_build import FakeEngine, current
from tests.sandbox.helpers import TEST_LABEL

BODY = b"#!/bin/sh\necho '9.9.9 (Claude Code)'\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    """A stand-in for the claude-agent-sdk wheel: the executable and one file that stays put."""
    path = tmp_path / "wheels" / cc.load_pin().wheel
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("claude_agent_sdk/__init__.py", "")
        z.writestr(cc.MEMBER, BODY)
    return path


@pytest.fixture
def pin(wheel: Path) -> cc.Pin:
    data = wheel.read_bytes()
    return replace(
        cc.load_pin(),
        wheel_bytes=len(data),
        wheel_sha256=sha(data),
        claude_bytes=len(BODY),
        claude_sha256=sha(BODY),
        claude_version="9.9.9",
    )


class ContextEngine(FakeEngine):
    """Records the whole build context (with the executable's mode) of each build."""

    def build_image(self, context: Path, image: str, *, labels, on_line) -> None:  # type: ignore[no-untyped-def]
        files = {p.relative_to(context).as_posix(): p for p in context.rglob("*") if p.is_file()}
        self.modes = {name: p.stat().st_mode & 0o777 for name, p in files.items()}
        self.built.append((image, {name: p.read_bytes() for name, p in files.items()}))
        self.images[image] = dict(labels)
        on_line("Step 1/9 : FROM coatcheck/sandbox:latest")


def build_with(engine: FakeEngine, pin: cc.Pin, wheel: Path, lines: list[str]) -> None:
    cc.build_claude_code(
        engine,
        lines.append,
        labels={"l": "v"},
        pin=pin,
        fetch=lambda _pin, _progress, *, cache: wheel,
    )


# -- the pin --------------------------------------------------------------------------------
def test_the_pin_ships_with_the_package():
    pin = cc.load_pin()
    assert (pin.requirement, pin.claude_version) == ("claude-agent-sdk==0.2.189", "2.1.332")
    assert pin.platform == "manylinux_2_17_x86_64"
    assert pin.claude_sha256 == "a2df1f41bb00250992926420d0063f89b127cb81abdd284dbefb80c50ff1d026"


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda t: t.replace("version = 0.2.189\n", ""), "lacks version"),
        (lambda t: t.replace("wheel_sha256 = b26a", "wheel_sha256 = XX6a"), "64 lowercase hex"),
        (lambda t: t.replace("claude_bytes = ", "claude_bytes = ~"), "number of bytes"),
        (lambda t: t + "garbage\n", "line 15: expected `key = value`"),
    ],
    ids=["missing-key", "bad-digest", "bad-size", "not-key-value"],
)
def test_a_bad_pin_fails_with_where_and_what(edit, error):
    text = (Path(cc.__file__).parent / "claude_code" / "pin.txt").read_text()
    with pytest.raises(ImageBuildError, match=error):
        cc.parse_pin(edit(text))


def test_the_recipe_digest_follows_the_pin_the_dockerfile_and_the_wrapper(monkeypatch):
    before = build.recipe_digest("claude-code")
    assert before not in {build.recipe_digest(n) for n in build.NAMES}
    for name in ("pin.txt", "Dockerfile", "cc_main.py"):
        with monkeypatch.context() as m:
            real = cc._recipe
            m.setattr(cc, "_recipe", lambda n, real=real, name=name: real(n) + b"#" * (n == name))
            assert build.recipe_digest("claude-code") != before, name
    sources = cc.agent._sources()
    monkeypatch.setattr(cc.agent, "_sources", lambda: {**sources, "runner/agent/new.py": b""})
    assert build.recipe_digest("claude-code") != before


# -- verification and the build context (no Docker) -----------------------------------------
def test_the_build_copies_the_checked_executable_and_the_wrapper(pin, wheel):
    engine, lines = ContextEngine(), []
    build_with(engine, pin, wheel, lines)
    ((image, files),) = engine.built
    assert image == cc.IMAGE and engine.images[cc.IMAGE] == {"l": "v"}
    assert files["claude"] == BODY and engine.modes["claude"] == 0o755
    assert "claude_agent_sdk/__init__.py" not in files  # only the executable leaves the wheel
    assert {"runner/__init__.py", "runner/agent/__main__.py", "runner/agent/loop.py"} <= set(files)
    assert b"runner.agent.claude_code" in files["cc_main.py"]
    docker_file = files["Dockerfile"].decode()
    assert "COPY claude /usr/local/bin/claude" in docker_file
    assert "LABEL org.coatcheck.image=claude-code" in docker_file
    assert any("extracting claude 9.9.9" in line for line in lines)
    assert any(line.startswith("claude-code: Step") for line in lines)


@pytest.mark.parametrize("field", ["wheel_sha256", "claude_sha256"])
def test_a_tampered_digest_fails_the_build_and_names_both_digests(pin, wheel, field):
    tampered = replace(pin, **{field: "0" * 64})
    engine = ContextEngine()
    with pytest.raises(ImageBuildError) as caught:
        build_with(engine, tampered, wheel, [])
    message = str(caught.value)
    assert "0" * 64 in message and getattr(pin, field) in message
    assert "not the pinned release" in message and "nothing was built" in message
    assert engine.built == []


def test_a_wheel_without_the_executable_is_refused(tmp_path, pin):
    empty = tmp_path / "empty.whl"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(ImageBuildError, match="has no claude_agent_sdk/_bundled/claude"):
        cc.extract_claude(empty, tmp_path / "claude", pin)


def test_fetch_uses_pip_once_then_the_cache(tmp_path, pin, wheel, monkeypatch):
    """A fake pip copies the wheel into --dest; a second fetch (or a damaged cache) is checked."""
    fake_pip = tmp_path / "pip.py"
    fake_pip.write_text(
        "import shutil, sys\nargs = sys.argv[1:]\n"
        f"shutil.copy({str(wheel)!r}, args[args.index('--dest') + 1])\n"
    )
    monkeypatch.setattr(cc.agent, "_pip", lambda: [sys.executable, str(fake_pip)])
    lines: list[str] = []
    got = cc.fetch_wheel(pin, lines.append, cache=tmp_path / "cache")
    assert got.read_bytes() == wheel.read_bytes() and got.parent.parent.name == "claude-code"
    assert any("fetching claude-agent-sdk==0.2.189" in line for line in lines)
    wheel.unlink()  # pip can't help any more: the cache must
    assert cc.fetch_wheel(pin, lines.append, cache=tmp_path / "cache") == got
    assert "using the cached" in lines[-1]


def test_the_cache_lives_under_coatcheck_home_or_the_user_cache():
    assert cc.cache_dir({"COATCHECK_HOME": "/h"}) == Path("/h/cache")
    assert cc.cache_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/coatcheck")


# -- what builds it, and what refuses --------------------------------------------------------
def test_it_is_built_only_when_named_and_listed_always(monkeypatch):
    calls: list[dict[str, str]] = []
    monkeypatch.setattr(cc, "build_claude_code", lambda _e, _p, *, labels: calls.append(labels))
    images = {build.BASE: current("base"), build.SANDBOX: current("sandbox"),
              build.AGENT: current("agent")}  # fmt: skip
    engine = FakeEngine(images)
    assert build.build(build.NAMES, engine=engine, progress=lambda _l: None) == []
    assert calls == []
    assert build.build(["claude-code"], engine=engine, progress=lambda _l: None) == ["claude-code"]
    assert calls == [current("claude-code")]
    states = [s.as_json() for s in build.status(FakeEngine(images))]
    assert states[-1] == {"name": "claude-code", "image": cc.IMAGE, "state": "missing"}


def test_building_it_builds_a_missing_sandbox_first(monkeypatch):
    order: list[str] = []
    monkeypatch.setattr(cc, "build_claude_code", lambda *_a, **_k: order.append("claude-code"))
    engine = FakeEngine({build.BASE: current("base")})
    assert build.build(["claude-code"], engine=engine, progress=lambda _l: None) == [
        "sandbox",
        "claude-code",
    ]
    assert [image for image, _ in engine.built] == [build.SANDBOX]


def test_images_list_json_includes_it(monkeypatch):
    monkeypatch.setattr(cli_images, "_engine", lambda: FakeEngine({cc.IMAGE: {}}))
    result = CliRunner().invoke(cli_images.images_group, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert {"name": "claude-code", "image": cc.IMAGE, "state": "stale"} in json.loads(result.output)


@pytest.mark.parametrize(
    ("labels", "says"),
    [(None, "is not built"), ({build.LABEL_RECIPE: "old"}, "another coatcheck version")],
    ids=["missing", "stale"],
)
def test_ensure_refuses_instead_of_building_it(labels, says):
    engine = FakeEngine({} if labels is None else {cc.IMAGE: labels})
    with pytest.raises(ImageMissing, match=says) as caught:
        build.ensure(cc.IMAGE, engine=engine, progress=lambda _l: None)
    assert "`coatcheck images build claude-code`" in str(caught.value)
    assert engine.built == []
    build.ensure(cc.IMAGE, engine=FakeEngine({cc.IMAGE: current("claude-code")}), progress=len)


# -- the real image (Docker) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A real build, forced, fetching through pip into a fresh cache (a minute or two)."""
    from sandbox.docker import Sandboxes

    lines: list[str] = []
    with pytest.MonkeyPatch.context() as m:
        m.setenv("COATCHECK_HOME", str(tmp_path_factory.mktemp("cc-home")))
        names = build.build(["claude-code"], engine=Sandboxes(), progress=lines.append, force=True)
    assert names[-1] == "claude-code", lines
    return lines


def in_image(docker_api: Any, *argv: str) -> str:
    """Run argv in the image as the sandbox runs it: no network, uid 10001, read-only root."""
    name = f"coatcheck-test-cc-{uuid.uuid4().hex[:8]}"
    container = docker_api.containers.create(
        cc.IMAGE, entrypoint=list(argv[:1]), command=list(argv[1:]), name=name,
        network_mode="none", user="10001:10001", read_only=True, labels={TEST_LABEL: "1"},
        tmpfs={"/tmp": "rw,exec,mode=1777", "/home/sandbox": "rw,uid=10001,gid=10001,mode=0700"},
        cap_drop=["ALL"], security_opt=["no-new-privileges"],
    )  # fmt: skip
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode()
        assert code == 0, out
        return str(out)
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_the_real_build_fetches_checks_and_labels(built, docker_api):
    assert any("fetching claude-agent-sdk==0.2.189" in line for line in built), built
    assert any("verifying" in line for line in built) and built[-1].endswith(f"built {cc.IMAGE}")
    labels = docker_api.api.inspect_image(cc.IMAGE)["Config"]["Labels"]
    assert labels[build.LABEL_IMAGE] == "claude-code"
    assert labels[build.LABEL_RECIPE] == build.recipe_digest("claude-code")


@pytest.mark.docker
def test_claude_runs_offline_as_the_sandbox_user(built, docker_api):
    assert in_image(docker_api, "claude", "--version").strip() == "2.1.332 (Claude Code)"


@pytest.mark.docker
def test_the_executable_in_the_image_is_the_pinned_one(built, docker_api):
    out = in_image(docker_api, "sh", "-c", "sha256sum /usr/local/bin/claude; "
                   "stat -c '%a %u' /usr/local/bin/claude; ls /opt/coatcheck/agent")  # fmt: skip
    digest, _path, mode, owner, *listing = out.split()
    assert (digest, mode, owner) == (cc.load_pin().claude_sha256, "755", "0")
    assert {"cc_main.py", "runner"} <= set(listing)


@pytest.mark.docker
def test_images_list_shows_it_current(built):
    argv = [sys.executable, "-m", "runner.cli", "images", "list", "--json"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {"name": "claude-code", "image": cc.IMAGE, "state": "current"} in json.loads(r.stdout)
