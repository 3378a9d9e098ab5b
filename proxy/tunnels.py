"""What the proxy knows about a client connection's destination, and the per-request check
against it. Pure.

A tunnel is opened by CONNECT (or, for plain HTTP, by the first absolute-form request) and
records the real destination and the address that was checked for it. Every request on the
connection is then checked against that destination: its target, Host header and
``:authority`` must name it, whatever came before on the same keep-alive connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.domains import normalize_host
from core.errors import InvalidDomain
from proxy.policy import Decision, check_binding, decide_destination, deny
from proxy.reasons import Reason
from proxy.runs import RunPolicy


@dataclass
class Tunnel:
    host: str
    port: int
    plain: bool = False  # absolute-form plain HTTP: the address is checked at dial time
    refused: Decision | None = None
    checked: dict[tuple[str, int], str] = field(default_factory=dict)


def norm(host: str) -> str:
    try:
        return normalize_host(host)
    except InvalidDomain:
        return host.lower()


class RunRules(Protocol):
    """What a request is checked against: the run (as engine.RunView has it)."""

    @property
    def run(self) -> RunPolicy: ...

    def destination(self, host: str, port: int) -> Decision: ...


def bind(
    tunnels: dict[str, Tunnel],
    client_id: str,
    rules: RunRules | None,
    target: tuple[str, int],
    host_headers: Sequence[str],
    authority: str | None,
) -> tuple[Tunnel | None, Decision]:
    """The tunnel a request goes through (None if there is none), and whether it may.

    A connection without one is plain HTTP in absolute form: its first request's target is the
    destination, if the run may reach it at all. ``rules`` is None for a client of no run.
    """
    tunnel = tunnels.get(client_id)
    if tunnel is None:
        dest = decide_destination(rules.run if rules is not None else None, *target)
        if not dest.allowed or rules is None:
            return None, dest
        tunnel = tunnels[client_id] = Tunnel(norm(target[0]), target[1], plain=True)
    if rules is None:
        return tunnel, deny(Reason.UNKNOWN_CLIENT, "no run")
    return tunnel, check_request(rules.destination, tunnel, target, host_headers, authority)


def check_request(
    destination: Callable[[str, int], Decision],
    tunnel: Tunnel,
    target: tuple[str, int],
    host_headers: Sequence[str],
    authority: str | None,
) -> Decision:
    """May this request go through this tunnel? Every claim must name its destination, and
    ``destination`` (the run's policy) must allow it."""
    if tunnel.refused is not None:
        return tunnel.refused
    host, port = target
    if norm(host) != tunnel.host or port != tunnel.port:
        return deny(
            Reason.HOST_MISMATCH,
            f"request target {host}:{port} differs from the connection's destination "
            f"{tunnel.host}:{tunnel.port}",
        )
    if not tunnel.plain and (tunnel.host, tunnel.port) not in tunnel.checked:
        return deny(Reason.UNCHECKED_DESTINATION, "destination not checked")
    binding = check_binding(tunnel.host, tunnel.port, host_headers, authority)
    if not binding.allowed:
        return binding
    return destination(tunnel.host, tunnel.port)


def sni_refusal(tunnel: Tunnel, sni: str | None) -> Decision | None:
    """A TLS SNI naming another host than the CONNECT target: the tunnel's refusal."""
    if sni and norm(sni) != tunnel.host:
        return deny(
            Reason.SNI_MISMATCH, f"TLS SNI {sni!r} differs from the CONNECT target {tunnel.host}"
        )
    return None


def refuse_connection(tunnels: dict[str, Tunnel], client_id: str, decision: Decision) -> Tunnel:
    """Refuse every later request on a client connection: its tunnel, or a new empty one."""
    tunnel = tunnels.setdefault(client_id, Tunnel("", 0))
    tunnel.refused = decision
    return tunnel
