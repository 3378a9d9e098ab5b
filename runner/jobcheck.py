"""What a job file needs from the vault, checked before it runs (and by ``coatcheck check``).

An agent job's model key, ``ANTHROPIC_API_KEY``, must be vaulted for ``api.anthropic.com``: a
key that the proxy would never inject there leaves the agent unable to reach its model, which
is better said now than at 3 a.m. So is an ``allow_opaque`` pattern over a domain one of the
job's secrets is vaulted for (opaque hosts get no secret). Only metadata is read (no key, no
values).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.domains import matches_any, parse_patterns
from core.errors import InvalidJobFile, UsageError
from proxy.pathrules import path_matches
from proxy.runs import opaque_conflicts
from runner.jobfile import API_HOST, API_KEY, Job

MESSAGES_PATH = "/v1/messages"
FIX = f"`coatcheck vault set {API_KEY} --domains {API_HOST}` (the key on stdin)"


def missing_key(home: Path) -> str:
    return f"no secret {API_KEY} in the vault at {home}; add it with {FIX}"


def vault_problems(
    job: Job, metas: Mapping[str, Any], *, home: Path, require_key: bool = True
) -> tuple[tuple[str, str], ...]:
    """``(field, message)`` problems of ``job`` given the vault's metadata by name. Pure.
    Without ``require_key``, a key that is not vaulted yet is no problem (``coatcheck check``
    on a machine that will run the job elsewhere); a vaulted one must still fit. An opaque
    host pattern may cover no domain of the job's secrets (:func:`opaque_problems`)."""
    opaque = opaque_problems(job, metas)
    if job.agent is None:
        return opaque
    meta = metas.get(API_KEY)
    if meta is None:
        return (("secrets", missing_key(home)),) if require_key else ()
    out = []
    try:
        patterns = parse_patterns(meta.domains)
    except UsageError:
        patterns = ()
    if matches_any(patterns, API_HOST, 443) is None:
        have = ", ".join(meta.domains) or "no domains"
        out.append(
            f"the vaulted {API_KEY} is for {have}, not {API_HOST}, so the agent could "
            f"not reach its model; vault it for {API_HOST}: {FIX}"
        )
    if "header" not in meta.surfaces:
        out.append(
            f"the vaulted {API_KEY} is not injected in headers (surfaces: "
            f"{', '.join(meta.surfaces)}); the API takes its key in a header: {FIX}"
        )
    if meta.methods and "POST" not in meta.methods:
        out.append(
            f"the vaulted {API_KEY} is limited to {', '.join(meta.methods)}; the agent "
            f"POSTs to {MESSAGES_PATH}: {FIX}"
        )
    if meta.paths and not any(path_matches(rule, MESSAGES_PATH) for rule in meta.paths):
        out.append(
            f"the vaulted {API_KEY} is limited to paths {', '.join(meta.paths)}, which "
            f"leave out {MESSAGES_PATH}: {FIX}"
        )
    return opaque + tuple(("secrets", message) for message in out)


def opaque_problems(job: Job, metas: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``allow_opaque`` patterns that cover a domain a secret of the job is vaulted for (an
    agent's key included): opaque hosts get no secret. Secrets not vaulted yet are left out."""
    if not job.allow_opaque:
        return ()
    names = (*job.secrets, *((API_KEY,) if job.agent is not None else ()))
    domains = {}
    for name in dict.fromkeys(names):
        meta = metas.get(name)
        if meta is not None:
            try:
                domains[name] = parse_patterns(meta.domains)
            except UsageError:
                continue
    conflicts = opaque_conflicts(parse_patterns(job.allow_opaque), domains)
    return tuple(("allow_opaque", message) for message in conflicts)


def check_vault(job: Job, source: Path, *, home: Path, require_key: bool = True) -> str | None:
    """InvalidJobFile if the vault at ``home`` does not serve ``job`` (see vault_problems);
    without ``require_key``, the note to show when the key is not vaulted yet."""
    if job.agent is None and not (job.allow_opaque and job.secrets):
        return None
    from vault.store import Vault

    metas = {m.name: m for m in Vault.open(home).list()}
    problems = vault_problems(job, metas, home=home, require_key=require_key)
    if problems:
        raise InvalidJobFile(str(source), problems)
    return None if job.agent is None or API_KEY in metas else missing_key(home)
