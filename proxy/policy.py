"""Allow or deny, always with a reason: pure decisions on the real destination.

Every function returns a :class:`Decision`; its ``reason`` (a :class:`~proxy.reasons.Reason`,
whose value is a stable snake_case word) goes into the 403 body, the ``X-Coatcheck-Reason``
header and the audit line. The destination is always the one the proxy will dial (the CONNECT
target, or an absolute-form target for plain HTTP); ``Host`` and ``:authority`` are client
claims and are only checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.addresses import allowed_by_cidr, parse_ip_literal, refusal_reason
from core.domains import matches_any, normalize_host
from core.errors import InvalidDomain
from proxy.reasons import Reason
from proxy.runs import RunPolicy, RunSecret


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    detail: str = ""


def allow(reason: Reason, detail: str = "") -> Decision:
    return Decision(True, reason, detail)


def deny(reason: Reason, detail: str) -> Decision:
    return Decision(False, reason, detail)


def decide_destination(run: RunPolicy | None, host: str, port: int) -> Decision:
    """May this run talk to ``host:port`` at all?"""
    if run is None:
        return deny(Reason.UNKNOWN_CLIENT, "this connection does not come from a registered run")
    ip = parse_ip_literal(host)
    if ip is not None:
        if allowed_by_cidr(ip, run.allow_cidrs):
            return allow(Reason.CIDR_ALLOWED)
        return deny(
            Reason.IP_LITERAL,
            f"{host} is an IP address; only names on the allowlist are reachable "
            "(an operator can allow a range with --allow-cidr)",
        )
    try:
        name = normalize_host(host)
    except InvalidDomain:
        return deny(Reason.BAD_HOST, f"{host!r} is not a valid host name")
    if matches_any(run.allowlist, name, port) is not None:
        return allow(Reason.ALLOWLISTED)
    return deny(
        Reason.NOT_ALLOWLISTED,
        f"{name}:{port} is not on this run's allowlist; allow it with --allow {name} "
        "or vault a secret for it",
    )


def decide_address(run: RunPolicy, host: str, ip: str) -> Decision:
    """Having resolved ``host`` to ``ip``: may the proxy dial it?"""
    try:
        name = normalize_host(host)
    except InvalidDomain:
        name = host
    if name in run.resolve:
        return allow(Reason.RESOLVE_MAPPED)
    if allowed_by_cidr(ip, run.allow_cidrs):
        return allow(Reason.CIDR_ALLOWED)
    why = refusal_reason(ip)
    if why is not None:
        return deny(
            Reason.for_address(why),
            f"{host} resolves to {ip} ({why.replace('_', ' ')}); map it explicitly with "
            "--resolve HOST:ADDR or allow the range with --allow-cidr",
        )
    return allow(Reason.PUBLIC_ADDRESS)


def check_binding(
    dest_host: str, dest_port: int, host_headers: Sequence[str], authority: str | None
) -> Decision:
    """The client's claims (Host, :authority) must name the real destination."""
    if len(host_headers) > 1:
        return deny(Reason.DUPLICATE_HOST, "the request has more than one Host header")
    claims = [h for h in (*host_headers, authority or "") if h]
    for claim in claims:
        host, port = split_host_port(claim)
        try:
            same = normalize_host(host) == normalize_host(dest_host)
        except InvalidDomain:
            same = False
        if not same or (port is not None and port != dest_port):
            return deny(
                Reason.HOST_MISMATCH,
                f"the request claims host {claim!r} but its connection goes to "
                f"{dest_host}:{dest_port}",
            )
    return allow(Reason.BOUND)


def split_host_port(text: str) -> tuple[str, int | None]:
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if port:
        return host, int(port) if port.isdigit() else -1
    return host, None


def injectable(
    run: RunPolicy, host: str, port: int, method: str, path: str, *, tls: bool
) -> tuple[RunSecret, ...]:
    """The secrets of ``run`` whose value may be injected into this request."""
    if not tls:
        return ()
    return tuple(s for s in run.secrets if s.applies_to(host, port, method, path))
