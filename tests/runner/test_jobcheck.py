"""What an agent job needs from the vault (runner/jobcheck.py): its model key, vaulted for
api.anthropic.com and usable there. Table-driven over the secret's metadata; no values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidJobFile
from runner.jobcheck import check_vault, vault_problems
from runner.jobfile import parse_job
from vault.secret import SecretMeta, SecretValue
from vault.store import Vault

FIX = "`coatcheck vault set ANTHROPIC_API_KEY --domains api.anthropic.com`"
HOME = Path("/nonexistent/home")


def meta(domains: tuple[str, ...] = ("api.anthropic.com",), **kw: Any) -> SecretMeta:
    now = datetime.now(UTC)
    return SecretMeta(name="ANTHROPIC_API_KEY", domains=domains, created=now, updated=now, **kw)


def agent_job(tmp_path: Path) -> Any:
    data = {"secrets": ["ANTHROPIC_API_KEY"], "agent": {"model": "m", "prompt": "p"}}
    return parse_job(data, source=tmp_path / "agent.toml")


@pytest.mark.parametrize(
    ("metas", "words"),
    [
        ({}, f"no secret ANTHROPIC_API_KEY in the vault at {HOME}; add it with {FIX}"),
        (
            {"ANTHROPIC_API_KEY": meta(("api.openai.com",))},
            "is for api.openai.com, not api.anthropic.com",
        ),
        ({"ANTHROPIC_API_KEY": meta(("*.anthropic.com:8443",))}, "not api.anthropic.com"),
        ({"ANTHROPIC_API_KEY": meta(surfaces=("query",))}, "not injected in headers"),
        (
            {"ANTHROPIC_API_KEY": meta(methods=("GET", "HEAD"))},
            "limited to GET, HEAD; the agent POSTs to /v1/messages",
        ),
        ({"ANTHROPIC_API_KEY": meta(paths=("/v2/*",))}, "leave out /v1/messages"),
    ],
    ids=["missing", "other-domain", "other-port", "no-header-surface", "get-only", "other-paths"],
)
def test_an_unusable_model_key_is_refused_with_the_fix(
    tmp_path: Path, metas: dict[str, SecretMeta], words: str
) -> None:
    problems = vault_problems(agent_job(tmp_path), metas, home=HOME)
    assert [f for f, _ in problems] == ["secrets"]
    assert words in problems[0][1] and FIX in problems[0][1]


@pytest.mark.parametrize(
    "m",
    [
        meta(),
        meta(("*.anthropic.com",)),
        meta(("api.anthropic.com:443", "example.com")),
        meta(methods=("POST",), paths=("/v1/*",)),
    ],
    ids=["exact", "wildcard", "with-port-and-more", "post-and-v1-paths"],
)
def test_a_usable_model_key_passes(tmp_path: Path, m: SecretMeta) -> None:
    assert vault_problems(agent_job(tmp_path), {"ANTHROPIC_API_KEY": m}, home=HOME) == ()


def test_a_command_job_needs_nothing_from_the_vault(tmp_path: Path) -> None:
    job = parse_job({"command": ["true"], "secrets": ["T"]}, source=tmp_path / "c.toml")
    assert vault_problems(job, {}, home=HOME) == ()


def test_check_vault_reads_the_real_vault_metadata(tmp_path: Path) -> None:
    home = tmp_path / "home"
    job = agent_job(tmp_path)
    with pytest.raises(InvalidJobFile) as caught:
        check_vault(job, Path("jobs/agent.toml"), home=home)
    assert str(caught.value).startswith("jobs/agent.toml: secrets: no secret ANTHROPIC_API_KEY")
    Vault.open(home).set(
        "ANTHROPIC_API_KEY", SecretValue("sk-ant-0123456789"), ["api.anthropic.com"]
    )
    check_vault(job, Path("jobs/agent.toml"), home=home)
