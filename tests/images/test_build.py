"""Image recipes and the build decisions, against an in-memory fake of the Docker adapter.

The real builds run in `make images` (and `coatcheck images build`); tests/runner/test_installed.py
checks that an installed coatcheck finds its recipes and its images are current.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UsageError
from images import build


class FakeEngine:
    """The image calls of sandbox.docker.Sandboxes, kept in memory."""

    def __init__(self, images: dict[str, dict[str, str]] | None = None) -> None:
        self.images = dict(images or {})
        self.built: list[tuple[str, dict[str, bytes]]] = []

    def image_labels(self, image: str) -> dict[str, str] | None:
        return self.images.get(image)

    def build_image(self, context: Path, image: str, *, labels, on_line) -> None:  # type: ignore[no-untyped-def]
        files = {p.name: p.read_bytes() for p in context.iterdir() if p.is_file()}
        self.built.append((image, files))
        self.images[image] = dict(labels)
        on_line("Step 1/1 : FROM base")


def current(name: str) -> dict[str, str]:
    return {build.LABEL_RECIPE: build.recipe_digest(name)}


def test_recipes_ship_with_the_package():
    assert "python3" in build.base_packages()
    assert len(build.recipe_digest("sandbox")) == 16
    assert build.recipe_digest("base") != build.recipe_digest("sandbox")


@pytest.mark.parametrize(
    ("labels", "state"),
    [
        (None, "missing"),
        ({}, "stale"),
        ({build.LABEL_RECIPE: "0" * 16}, "stale"),
        ("current", "current"),
    ],
    ids=["missing", "unlabelled", "older-recipe", "current"],
)
def test_status_compares_the_recipe_digest(labels, state):
    images = (
        {}
        if labels is None
        else {build.SANDBOX: current("sandbox") if labels == "current" else labels}
    )
    assert build.status(FakeEngine(images), ["sandbox"])[0].state == state


def test_first_use_builds_the_missing_sandbox_image_with_progress():
    engine = FakeEngine({build.BASE: current("base")})
    lines: list[str] = []
    build.ensure(build.SANDBOX, engine=engine, progress=lines.append)
    ((image, files),) = engine.built
    assert image == build.SANDBOX
    assert set(files) == {"Dockerfile", "init.py"}
    assert b"COPY init.py" in files["Dockerfile"]
    assert engine.images[build.SANDBOX] == current("sandbox")
    assert any("not built yet" in line for line in lines)
    assert any(line.startswith("sandbox: Step") for line in lines)


def test_a_stale_sandbox_image_is_rebuilt_and_a_current_one_is_not():
    engine = FakeEngine({build.BASE: current("base"), build.SANDBOX: {build.LABEL_RECIPE: "old"}})
    lines: list[str] = []
    build.ensure(build.SANDBOX, engine=engine, progress=lines.append)
    assert [b[0] for b in engine.built] == [build.SANDBOX]
    assert any("another coatcheck version" in line for line in lines)
    build.ensure(build.SANDBOX, engine=engine, progress=lines.append)
    assert len(engine.built) == 1


def test_a_users_own_image_is_never_built():
    engine = FakeEngine()
    build.ensure("python:3.13-slim", engine=engine, progress=lambda _l: None)
    assert engine.built == []


def test_build_of_an_unknown_image_names_the_images():
    with pytest.raises(UsageError, match="base, sandbox, agent"):
        build.build(["nope"], engine=FakeEngine(), progress=lambda _l: None)


def test_build_without_force_leaves_current_images_alone():
    engine = FakeEngine(
        {
            build.BASE: current("base"),
            build.SANDBOX: current("sandbox"),
            build.AGENT: current("agent"),
        }
    )
    lines: list[str] = []
    assert build.build(build.NAMES, engine=engine, progress=lines.append) == []
    assert lines == [
        f"base: {build.BASE} is up to date",
        f"sandbox: {build.SANDBOX} is up to date",
        f"agent: {build.AGENT} is up to date",
    ]
    del engine.images[build.AGENT]  # (a present agent image would be rebuilt on the new sandbox)
    assert build.build(["sandbox"], engine=engine, progress=lines.append, force=True) == ["sandbox"]
