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

from core.domains import normalize_host
from core.errors import InvalidDomain
from proxy.policy import Decision, check_binding, deny


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
            "host_mismatch",
            f"request target {host}:{port} differs from the connection's destination "
            f"{tunnel.host}:{tunnel.port}",
        )
    if not tunnel.plain and (tunnel.host, tunnel.port) not in tunnel.checked:
        return deny("unchecked_destination", "destination not checked")
    binding = check_binding(tunnel.host, tunnel.port, host_headers, authority)
    if not binding.allowed:
        return binding
    return destination(tunnel.host, tunnel.port)
