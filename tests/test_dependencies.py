"""pyproject.toml declares exactly what the shipped packages import.

A module that arrives only as someone else's dependency can vanish with their next release
(mitmproxy 12.3 dropped ``zstandard``, and a fresh clone broke): every third-party import of a
shipped package must come from a declared distribution, and nothing is declared that nothing
imports. The tests' own imports must come from the ``dev`` extra or the main dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("core", "proxy", "sandbox", "runner", "vault", "images")
OWN = set(SHIPPED) | {"tests", "examples"} | {p.stem for p in (ROOT / "examples").glob("*.py")}
# Standard-library modules of Python versions newer than this one, imported under a version check.
LATER_STDLIB = {"compression"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return norm(re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0])


def declared(*extras: str) -> set[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["project"]["optional-dependencies"][extra]
    return {requirement_name(r) for r in reqs}


def third_party_imports(sources: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """{imported module: {files}} for every absolute import that is neither ours nor stdlib.

    Dotted names are kept (``backports.zstd``) so namespace packages map to the right
    distribution."""
    found: dict[str, set[str]] = {}
    stdlib = set(sys.stdlib_module_names) | LATER_STDLIB | {"__future__"}
    for name, text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top in stdlib or top in OWN:
                    continue
                key = ".".join(mod.split(".")[:2]) if top == "backports" else top
                found.setdefault(key, set()).add(name)
    return found


def providers(module: str) -> set[str]:
    """The installed distributions that provide ``module``."""
    dists = md.packages_distributions()
    top = module.split(".")[0]
    names = {norm(d) for d in dists.get(top, [])}
    if "." in module:  # a namespace package: only the distributions with that subpackage
        sub = module.replace(".", "/")
        names = {n for n in names if any(str(f).startswith(sub) for f in md.files(n) or ())}
    return names


def undeclared(imports: dict[str, set[str]], allowed: set[str]) -> dict[str, set[str]]:
    return {m: files for m, files in imports.items() if not providers(m) & allowed}


def sources_of(*packages: str) -> list[tuple[str, str]]:
    return [
        (p.relative_to(ROOT).as_posix(), p.read_text())
        for pkg in packages
        for p in sorted((ROOT / pkg).rglob("*.py"))
    ]


def image_pins() -> dict[str, str]:
    text = (ROOT / "images" / "agent" / "requirements.txt").read_text()
    return {norm(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


def test_the_in_image_agent_imports_only_what_the_image_pins():
    imports = third_party_imports(sources_of("runner/agent"))
    assert {norm(m) for m in imports} <= set(image_pins())


def test_the_image_pins_the_sdk_version_the_tests_cover():
    lock = (ROOT / "requirements.lock").read_text()
    locked = re.search(r"^anthropic==(\S+)", lock, re.M)
    assert locked and image_pins()["anthropic"] == locked[1]


def test_every_import_of_the_shipped_packages_is_declared():
    assert undeclared(third_party_imports(sources_of(*SHIPPED)), declared()) == {}


def test_nothing_is_declared_that_nothing_imports():
    imported = third_party_imports(sources_of(*SHIPPED))
    used = set().union(*(providers(m) for m in imported))
    assert declared() - used == set()


def test_tests_and_examples_import_only_declared_distributions():
    imports = third_party_imports(sources_of("tests", "examples"))
    assert undeclared(imports, declared("dev")) == {}


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("import zstandard\n", {"zstandard"}),  # the import that broke a fresh clone
        ("def f():\n    from pyparsing import Word\n", {"pyparsing"}),  # mitmproxy brings it
        ("from backports import zstd\nimport brotli\n", set()),
        ("import json, ssl\nfrom core import errors\n", set()),
    ],
    ids=["undeclared-module", "undeclared-in-function", "declared", "stdlib-and-own"],
)
def test_the_check_catches_an_undeclared_import(source, missing):
    found = undeclared(third_party_imports([("probe.py", source)]), declared())
    assert set(found) == missing


def test_mitmproxy_is_pinned_to_a_minor_release():
    """The proxy uses mitmproxy's internals: its range must be one minor release wide."""
    (spec,) = [
        r for r in PYPROJECT["project"]["dependencies"] if requirement_name(r) == "mitmproxy"
    ]
    low = re.search(r">=\s*(\d+)\.(\d+)", spec)
    high = re.search(r"<\s*(\d+)\.(\d+)", spec)
    assert low and high, spec
    assert (int(high[1]), int(high[2])) == (int(low[1]), int(low[2]) + 1), spec


def test_the_lock_pins_every_declared_dependency():
    lock = (ROOT / "requirements.lock").read_text()
    pinned = {norm(m[1]) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", lock, re.M)}
    assert declared("dev") - pinned == set()
