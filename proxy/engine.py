"""The proxy's per-request logic, between the pure core and the mitmproxy adapter.

``Engine`` knows the registered runs, where real values come from, and how to turn a run's
secrets into swaps, leak scanners and scrubbers (cached per run and vault generation). It does
no I/O of its own except DNS resolution (through an injectable resolver) and it imports no
mitmproxy: the addon calls it with plain values.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from core.domains import parse_pattern
from proxy.forms import paired_forms
from proxy.fragments import basic_token_pairs, without_range
from proxy.leaks import LeakScanner
from proxy.overrides import honouring_method_rules
from proxy.policy import Decision, allow, decide_address, decide_destination, deny, injectable
from proxy.reasons import Reason
from proxy.rewrite import Outcome
from proxy.runs import RunPolicy, RunSecret
from proxy.substitute import Swap
from proxy.tunnels import Tunnel, norm

Resolver = Callable[[str, int], Awaitable[list[str]]]
Fields = tuple[tuple[bytes, bytes], ...]
MEMO_LIMIT = 4096
LEARNED_LIMIT = 8  # exact injected forms (Basic tokens) a run view scrubs besides its values


class SecretValues(Protocol):
    """Where real values come from. ``generation`` changes whenever any value may have."""

    def generation(self) -> object: ...

    def reveal(self, name: str) -> str | None: ...


class DictValues:
    """An in-memory SecretValues, for tests and benchmarks."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        self._gen = 0

    def set(self, name: str, value: str) -> None:
        self._values[name] = value
        self._gen += 1

    def remove(self, name: str) -> None:
        self._values.pop(name, None)
        self._gen += 1

    def generation(self) -> object:
        return self._gen

    def reveal(self, name: str) -> str | None:
        return self._values.get(name)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclass
class RunView:
    """A run as of one vault generation: its current rules, values, scrub pairs and scanners.

    The addon takes one view per request (one ``stat`` of the vault) and uses it in every hook
    of that request.
    """

    run: RunPolicy
    generation: object = None
    values: dict[str, str] = field(default_factory=dict)
    scrub_pairs: tuple[tuple[bytes, bytes], ...] = ()
    scanners: dict[tuple[str, ...], LeakScanner] = field(default_factory=dict)
    learned: tuple[tuple[bytes, bytes], ...] = ()  # the tail of scrub_pairs: see learn()
    cut_off: set[str] = field(default_factory=set)  # runs cut off (the engine's, shared)
    _memo: dict[tuple[object, ...], Any] = field(default_factory=dict)

    def noted(self, refusal: Decision) -> Decision:
        """A refusal of one of the run's responses, passed on. A real value that came back to a
        request that carried none (``unexpected_value``) cuts off a run that blocks leaks: its
        later requests are refused (:meth:`destination`)."""
        if refusal.reason == Reason.UNEXPECTED_VALUE and self.run.on_leak == "block":
            self.cut_off.add(self.run.run_id)
        return refusal

    def learn(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        """Scrub these exact forms the proxy made of a value (the Basic token it re-encoded:
        :func:`proxy.fragments.basic_token_pairs`) from the run's responses from now on,
        besides the values; past ``LEARNED_LIMIT`` the oldest go."""
        new = tuple(p for p in pairs if p not in self.learned)
        if new:
            values = self.scrub_pairs[: len(self.scrub_pairs) - len(self.learned)]
            self.learned = (self.learned + new)[-LEARNED_LIMIT:]
            self.scrub_pairs = values + self.learned

    def _remember(self, key: tuple[object, ...], compute: Callable[[], Any]) -> Any:
        # Decisions are pure functions of the run (fixed for this view) and the request's
        # coordinates, so a keep-alive connection asks the policy once, not per request.
        try:
            return self._memo[key]
        except KeyError:
            if len(self._memo) > MEMO_LIMIT:
                self._memo.clear()
            value = self._memo[key] = compute()
            return value

    def destination(self, host: str, port: int) -> Decision:
        if self.run.run_id in self.cut_off:
            return deny(Reason.UNEXPECTED_VALUE, "the run was cut off after an unexpected value")
        return self._remember(
            ("dest", host, port), lambda: decide_destination(self.run, host, port)
        )

    def injectable(
        self, host: str, port: int, method: str, path: str, *, tls: bool, fields: Fields = ()
    ) -> tuple[RunSecret, ...]:
        """The secrets that may be injected into a request; none with method rules when its
        header ``fields`` or query may override its method (:mod:`proxy.overrides`)."""
        by_path = any(s.paths for s in self.run.secrets)
        key = ("inj", host, port, method, tls, path.split("?", 1)[0] if by_path else "")
        secrets = self._remember(
            key, lambda: injectable(self.run, host, port, method, path, tls=tls)
        )
        return honouring_method_rules(secrets, fields, path)

    def after_injection(self, before: Fields, out: Outcome, swaps: list[Swap]) -> Fields:
        """The header fields of a request ``out`` swapped values into, or whose body a value
        may go into later (``before``: as they came): without Range; its re-encoded Basic
        tokens scrubbed from now on (:mod:`proxy.fragments`)."""
        if not out.injected and not any("body" in s.surfaces for s in swaps):
            return out.fields
        self.learn(basic_token_pairs(before, out.fields, swaps))
        return without_range(out.fields)

    def swaps(self, secrets: tuple[RunSecret, ...]) -> list[Swap]:
        """Swaps for the secrets that still have a value (a removed name swaps nothing)."""
        return [
            Swap(s.name, s.placeholder, self.values[s.name], s.surfaces)
            for s in secrets
            if s.name in self.values
        ]

    def leak_scanner(self, allowed: tuple[RunSecret, ...]) -> LeakScanner:
        """Scanner for the run's placeholders that must not go to this destination."""
        key = tuple(s.name for s in allowed)
        scanner = self.scanners.get(key)
        if scanner is None:
            names = set(key)
            scanner = LeakScanner(
                ((s.name, s.placeholder) for s in self.run.secrets if s.name not in names),
                own=(s.placeholder for s in self.run.secrets),
            )
            self.scanners[key] = scanner
        return scanner


class Engine:
    def __init__(
        self,
        values: SecretValues,
        *,
        resolve: Mapping[str, str] | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.values = values
        self.resolve = dict(resolve or {})
        self.resolver = resolver
        self._runs: dict[str, RunPolicy] = {}
        self._views: dict[str, RunView] = {}
        self._cut_off: set[str] = set()  # runs whose requests are all refused: RunView.noted
        self._lock = threading.Lock()

    # -- runs ---------------------------------------------------------------------------
    def register(self, run: RunPolicy) -> None:
        with self._lock:
            self._runs[run.run_id] = run
            self._views.pop(run.run_id, None)

    def unregister(self, run_id: str) -> RunPolicy | None:
        with self._lock:
            self._views.pop(run_id, None)
            self._cut_off.discard(run_id)
            return self._runs.pop(run_id, None)

    def runs(self) -> list[RunPolicy]:
        return list(self._runs.values())

    def registered(self, run_id: str) -> RunPolicy | None:  # no vault look-up
        return self._runs.get(run_id)

    def view(self, run_id: str | None) -> RunView | None:
        """The run as the vault has it now: rotated values and edited rules apply at once."""
        registered = self._runs.get(run_id) if run_id else None
        if registered is None:
            return None
        gen = self.values.generation()
        view = self._views.get(registered.run_id)
        if view is not None and view.generation == gen:
            return view
        view = RunView(run=self._current(registered), generation=gen, cut_off=self._cut_off)
        pairs: list[tuple[bytes, bytes]] = []
        for s in registered.secrets:
            value = self.values.reveal(s.name)
            if value is None:
                continue
            view.values[s.name] = value
            pairs.extend(paired_forms(value, s.placeholder))
        view.scrub_pairs = tuple(pairs)
        self._views[registered.run_id] = view
        return view

    def all_scrub_pairs(self) -> tuple[tuple[bytes, bytes], ...]:
        """Every registered run's real values and their placeholders (for scrubbing logs)."""
        pairs: list[tuple[bytes, bytes]] = []
        for run_id in list(self._runs):
            view = self.view(run_id)
            if view is not None:
                pairs.extend(view.scrub_pairs)
        return tuple(pairs)

    def run(self, run_id: str | None) -> RunPolicy | None:
        view = self.view(run_id)
        return view.run if view is not None else None

    def _current(self, run: RunPolicy) -> RunPolicy:
        """Rules edited in the vault (domains, surfaces, methods, paths) apply at once."""
        meta_of = getattr(self.values, "meta", None)
        if meta_of is None:
            return run
        secrets = []
        for s in run.secrets:
            meta = meta_of(s.name)
            if meta is None:
                secrets.append(s)
                continue
            secrets.append(
                replace(
                    s,
                    domains=tuple(parse_pattern(d) for d in meta.domains),
                    surfaces=tuple(meta.surfaces),
                    methods=tuple(m.upper() for m in meta.methods),
                    paths=tuple(meta.paths),
                )
            )
        return replace(run, secrets=tuple(secrets))

    # -- resolve, check, dial ----------------------------------------------------------
    async def pick_address(self, run: RunPolicy, host: str, port: int) -> tuple[str, Decision]:
        """Resolve ``host`` once, check every answer, return the first allowed address."""
        mapped = run.resolve.get(host) or self.resolve.get(host)
        if mapped is not None:
            return mapped, allow(Reason.RESOLVE_MAPPED)
        try:
            answers = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            return "", deny(
                Reason.DNS_FAILED, f"{host} could not be resolved ({exc.__class__.__name__})"
            )
        last = deny(Reason.DNS_FAILED, f"{host} has no address")
        for ip in answers:
            decision = decide_address(run, host, ip)
            if decision.allowed:
                return ip, decision
            last = decision
        return "", last

    async def open_tunnel(
        self, run: RunPolicy | None, host: str, port: int
    ) -> tuple[Tunnel | None, Decision]:
        """CONNECT ``host:port``: may the run reach it? Resolve and check it once; the tunnel
        remembers the address (or why it was refused) for the requests and dials that follow."""
        decision = decide_destination(run, host, port)
        if not decision.allowed or run is None:
            return None, decision
        tunnel = Tunnel(norm(host), port)
        if await self.check_tunnel(run, tunnel, tunnel.host, port):
            return tunnel, decision
        return tunnel, tunnel.refused or deny(Reason.ADDRESS_REFUSED, "address refused")

    async def check_tunnel(self, run: RunPolicy, tunnel: Tunnel, host: str, port: int) -> bool:
        """Resolve and check ``host`` for ``tunnel``; remember the address, or the refusal."""
        address, decision = await self.pick_address(run, host, port)
        if not decision.allowed:
            tunnel.refused = decision
            return False
        tunnel.checked[(host, port)] = address
        return True

    async def dial_address(
        self, run: RunPolicy | None, tunnel: Tunnel | None, host: str, port: int
    ) -> tuple[str | None, str]:
        """The address to dial for ``host:port``: the one checked for this tunnel, never a
        fresh DNS answer. Plain-HTTP destinations are checked here, at dial time."""
        if tunnel is None or run is None:
            return None, "coatcheck: destination was not checked"
        address = tunnel.checked.get((host, port))
        if address is None and tunnel.plain:
            if await self.check_tunnel(run, tunnel, host, port):
                address = tunnel.checked[(host, port)]
            elif tunnel.refused is not None:
                refused = tunnel.refused
                return None, f"coatcheck refused ({refused.reason}): {refused.detail}"
        if address is None:
            return None, "coatcheck: destination was not checked"
        return address, ""
