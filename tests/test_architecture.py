"""Import rules of the design card, kept true by a test.

Packages are layered: ``runner -> proxy, vault, sandbox -> core`` (and ``images``, the image
recipes and their builder, sits beside runner, over sandbox). No package imports one above it
or beside it, at module level or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "proxy", "sandbox", "runner", "vault", "images")
SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))

# Which of our packages each package may import (besides itself).
LAYERS = {
    "core": set(),
    "proxy": {"core"},
    "vault": {"core"},
    "sandbox": {"core"},
    "images": {"core", "sandbox"},
    "runner": {"core", "proxy", "vault", "sandbox", "images"},
}
ONLY_IN = {
    "mitmproxy": {"proxy/addon.py", "proxy/mitm.py", "proxy/hookless.py"},
    "docker": {"sandbox/docker.py"},
    "keyring": {"vault/keystore.py"},
    "cronsim": {"runner/schedule/cron.py"},
    "starlette": {"runner/serve/public.py"}
    | {
        f"runner/console/{m}.py"
        for m in (
            "api",
            "app",
            "confirm",
            "context",
            "forms",
            "live",
            "login",
            "pages",
            "render",
            "static",
        )
    },  # fmt: skip
    "jinja2": {"runner/console/render.py"},
    "uvicorn": {"runner/serve/http.py"},
    "trustme": set(),  # test and demo helpers stay out of the shipped packages
}
PURE = (
    "core/domains.py", "core/addresses.py", "proxy/forms.py", "proxy/scrub.py",
    "proxy/policy.py", "proxy/substitute.py", "proxy/leaks.py", "core/placeholders.py",
    "proxy/runs.py", "proxy/decoders.py", "proxy/rewrite.py", "proxy/responses.py",
    "proxy/tunnels.py", "core/messages.py", "core/errors.py", "proxy/reasons.py",
    "proxy/plan.py", "proxy/flowstate.py", "proxy/guard.py", "proxy/identity.py",
    "proxy/patterns.py", "proxy/pattern_sets.py", "proxy/spellings.py", "proxy/matching.py",
    "proxy/channels.py",
    "proxy/fragments.py", "proxy/overrides.py",
    "runner/schedule/cron.py", "runner/schedule/zones.py", "runner/schedule/policy.py",
    "runner/serve/tokens.py", "runner/serve/github.py", "runner/serve/firing.py",
    "sandbox/names.py", "core/wire.py",
)  # fmt: skip
IO_MODULES = {"mitmproxy", "docker", "keyring", "socket", "subprocess", "structlog", "requests",
              "httpx", "asyncio", "os", "shutil"}  # fmt: skip
REVEAL_ALLOWED = {"vault/validate.py", "vault/crypto.py", "runner/values.py"}
# The sandbox's PID 1 runs inside the image with `python3 -I -S`: the standard library only.
STDLIB_ONLY = ("sandbox/init.py", "sandbox/names.py", "sandbox/relay.py")


def imports(path: Path, source: str | None = None) -> set[str]:
    """Top-level names of every absolute import in ``path``, in functions too."""
    tree = ast.parse(path.read_text() if source is None else source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def upward_imports(path: Path, source: str | None = None) -> set[str]:
    package = rel(path).split("/")[0]
    ours = imports(path, source) & set(PACKAGES)
    return ours - LAYERS[package] - {package}


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_arrows_point_down(path):
    assert upward_imports(path) == set()


@pytest.mark.parametrize(
    ("module", "source", "caught"),
    [
        ("core/probe.py", "def f():\n    from runner import run\n", {"runner"}),
        ("proxy/probe.py", "import vault.store\n", {"vault"}),
        ("vault/probe.py", "from proxy.domains import x\n", {"proxy"}),
        ("sandbox/probe.py", "import runner.cli\n", {"runner"}),
        ("runner/probe.py", "import proxy, vault, sandbox, core, images\n", set()),
    ],
    ids=["core-to-runner-in-function", "proxy-to-vault", "vault-to-proxy", "sandbox-to-runner",
         "runner-may-import-all"],
)  # fmt: skip
def test_layering_check_catches_an_upward_import(module, source, caught):
    """The rule itself works: an upward or sideways import is caught, a downward one is not."""
    assert upward_imports(ROOT / module, source) == caught


def test_relative_imports_are_not_used():
    """The layering test reads absolute imports; a relative one would slip past it."""
    users = [
        rel(p)
        for p in SOURCES
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    assert users == []


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_one_adapter_per_outside_system(library):
    users = {rel(p) for p in SOURCES if library in imports(p)}
    assert users == ONLY_IN[library]


@pytest.mark.parametrize("module", PURE)
def test_pure_core_does_no_io(module):
    assert imports(ROOT / module) & IO_MODULES == set()


@pytest.mark.parametrize("module", STDLIB_ONLY)
def test_sandbox_init_needs_only_the_standard_library(module):
    import sys

    # the sandbox package itself ships in the image (stdlib-only modules, each listed here)
    assert (
        imports(ROOT / module) - set(sys.stdlib_module_names) - {"__future__", "sandbox"} == set()
    )


def test_secret_values_are_revealed_in_few_places():
    users = {rel(p) for p in SOURCES if ".reveal()" in p.read_text()}
    assert users <= REVEAL_ALLOWED


@pytest.mark.parametrize("path", SOURCES, ids=rel)
def test_one_concept_per_file_stays_small(path):
    assert len(path.read_text().splitlines()) <= 320


AGENT = sorted((ROOT / "runner" / "agent").rglob("*.py"))


@pytest.mark.parametrize("path", AGENT, ids=rel)
def test_the_in_sandbox_agent_needs_only_the_sdk(path):
    """runner/agent runs inside the agent image: the standard library, the SDK and itself."""
    import sys

    tree = ast.parse(path.read_text())
    mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    outside = {
        m for m in mods
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in {"anthropic", "__future__"}
        and not m.startswith("runner.agent")
    }  # fmt: skip
    assert outside == set()
