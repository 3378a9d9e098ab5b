"""What the proxy knows about a run: its secrets' placeholders and rules, its allowlist.

A run is registered by the runner over the service's control socket (a JSON object, parsed here
into frozen types) and identified afterwards only by the Unix socket its sandbox connects
through. Real values are not part of a run: they are read from the vault at request time, so a
rotated value is used at once and a removed one is injected nowhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from core.addresses import parse_cidrs
from core.domains import DomainPattern, normalize_host, parse_pattern, parse_patterns
from core.errors import UsageError
from core.surfaces import SURFACES
from proxy.pathrules import path_matches

RUN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{3,63}$")
ON_LEAK = ("log", "block")


@dataclass(frozen=True, slots=True)
class RunSecret:
    name: str
    placeholder: str
    domains: tuple[DomainPattern, ...]
    surfaces: tuple[str, ...] = ("header", "basic")
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def applies_to(self, host: str, port: int, method: str, path: str) -> bool:
        if not any(p.matches(host, port) for p in self.domains):
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        return not self.paths or any(path_matches(rule, path) for rule in self.paths)


@dataclass(frozen=True, slots=True)
class RunPolicy:
    run_id: str
    secrets: tuple[RunSecret, ...] = ()
    allow: tuple[DomainPattern, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=dict)
    allow_cidrs: tuple[IPv4Network | IPv6Network, ...] = ()
    on_leak: str = "log"
    owner_pid: int | None = None
    allow_opaque: tuple[DomainPattern, ...] = ()  # spliced, never intercepted: proxy.opaque
    allowlist: tuple[DomainPattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every secret's domains plus --allow; asked on every request, so computed once.
        allowed = tuple(p for s in self.secrets for p in s.domains) + self.allow
        object.__setattr__(self, "allowlist", allowed)


def overlap(a: DomainPattern, b: DomainPattern) -> bool:
    """Is there a ``host:port`` both patterns match?"""
    if a.port is not None and b.port is not None and a.port != b.port:
        return False
    if a.wildcard and b.wildcard:
        return a.host == b.host or _under(a.host, b.host) or _under(b.host, a.host)
    if a.wildcard:
        return _under(b.host, a.host)
    if b.wildcard:
        return _under(a.host, b.host)
    return a.host == b.host


def _under(name: str, suffix: str) -> bool:
    return name.endswith("." + suffix)


def opaque_conflicts(
    opaque: tuple[DomainPattern, ...], secrets: Mapping[str, tuple[DomainPattern, ...]]
) -> list[str]:
    """Why ``--allow-opaque`` patterns may not be used with these secrets (name -> domains):
    one message per opaque pattern that covers a host some secret is for."""
    out = []
    for pattern in opaque:
        for name, domains in secrets.items():
            hit = next((d for d in domains if overlap(pattern, d)), None)
            if hit is not None:
                out.append(
                    f"the opaque host pattern {pattern} (--allow-opaque) covers {hit}, a "
                    f"domain of the secret {name}: "
                    "opaque hosts get no secret (their traffic is not intercepted); drop the "
                    f"opaque pattern, or narrow it to hosts {name} is not for"
                )
    return out


def parse_resolve(items: Mapping[str, str] | list[str]) -> dict[str, str]:
    """``HOST:ADDR`` items (or a mapping) into ``{normalized host: address}``."""
    pairs = items.items() if isinstance(items, Mapping) else (_split_resolve(i) for i in items)
    out: dict[str, str] = {}
    for host, addr in pairs:
        try:
            out[normalize_host(host)] = str(ip_address(addr.strip("[]")))
        except ValueError:
            raise UsageError(
                f"--resolve {host}:{addr}: {addr!r} is not an IP address; use HOST:ADDR, "
                "e.g. api.internal.test:10.0.0.5 or api.internal.test:[fd00::5]"
            ) from None
    return out


def _split_resolve(item: str) -> tuple[str, str]:
    host, sep, addr = item.partition(":")
    if not sep or not host or not addr:
        raise UsageError(f"--resolve {item!r}: use HOST:ADDR, e.g. api.internal.test:10.0.0.5")
    return host, addr


def parse_run(obj: Mapping[str, Any]) -> RunPolicy:
    """Parse a registration (already JSON-decoded) into a RunPolicy; UsageError on bad input."""
    run_id = str(obj.get("run_id", ""))
    if not RUN_ID_RE.match(run_id):
        raise UsageError(f"run id {run_id!r} must match {RUN_ID_RE.pattern}")
    secrets_ = []
    for s in obj.get("secrets", []):
        surfaces = tuple(s.get("surfaces", ("header", "basic")))
        if bad := [x for x in surfaces if x not in SURFACES]:
            raise UsageError(f"secret {s.get('name')}: unknown surface(s) {bad}; use {SURFACES}")
        secrets_.append(
            RunSecret(
                name=str(s["name"]),
                placeholder=str(s["placeholder"]),
                domains=tuple(parse_pattern(d) for d in s["domains"]),
                surfaces=surfaces,
                methods=tuple(m.upper() for m in s.get("methods", ())),
                paths=tuple(s.get("paths", ())),
            )
        )
    placeholders = [s.placeholder for s in secrets_]
    if len(set(placeholders)) != len(placeholders):
        raise UsageError("two secrets of one run share a placeholder")
    on_leak = obj.get("on_leak", "log")
    if on_leak not in ON_LEAK:
        raise UsageError(f"--on-leak {on_leak!r}: use one of {ON_LEAK}")
    owner = obj.get("owner_pid")
    opaque = parse_patterns(obj.get("allow_opaque", ()))
    conflicts = opaque_conflicts(opaque, {s.name: s.domains for s in secrets_})
    if conflicts:
        raise UsageError("; ".join(conflicts))
    return RunPolicy(
        run_id=run_id,
        secrets=tuple(secrets_),
        allow=parse_patterns(obj.get("allow", ())),
        resolve=parse_resolve(obj.get("resolve", {})),
        allow_cidrs=parse_cidrs(obj.get("allow_cidr", ())),
        on_leak=on_leak,
        owner_pid=int(owner) if owner is not None else None,
        allow_opaque=opaque,
    )
