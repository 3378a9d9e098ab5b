"""The vault's own import and reveal rules, checked on its source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VAULT = Path(__file__).resolve().parents[2] / "vault"
MODULES = sorted(VAULT.glob("*.py"))


def imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def reveal_calls(tree: ast.AST) -> int:
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "reveal"
    )


@pytest.mark.parametrize(
    ("library", "allowed"),
    [
        ("keyring", {"keystore.py"}),
        ("cryptography", {"crypto.py"}),
        ("click", {"cli.py"}),
        ("mitmproxy", set()),
        ("docker", set()),
    ],
)
def test_one_adapter_per_outside_library(library: str, allowed: set[str]) -> None:
    users = {m.name for m in MODULES if library in imported_roots(ast.parse(m.read_text()))}
    assert users == allowed


def test_values_are_revealed_in_exactly_two_places() -> None:
    calls = {m.name: reveal_calls(ast.parse(m.read_text())) for m in MODULES}
    assert {name: n for name, n in calls.items() if n} == {"validate.py": 1, "crypto.py": 1}
