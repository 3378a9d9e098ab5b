"""Opaque hosts (``--allow-opaque``): which CONNECTs are spliced instead of intercepted. Pure.

A run's opaque patterns are an allowlist of their own (:attr:`~proxy.runs.RunPolicy.allow_opaque`).
A CONNECT to a host one of them covers is checked like any destination (resolve, refuse private
addresses unless mapped or ``--allow-cidr``, dial only the checked address), answered ``200``,
and then its TLS stream goes to that address untouched (:mod:`proxy.splice`): no termination,
no HTTP, so no injection, no scrubbing and no leak signal there. What the proxy still checks is
the ClientHello: it must be TLS and its SNI must name the CONNECT target
(:func:`hello_refusal`).

A host a secret of the run covers is never opaque: registration refuses such a pattern
(:func:`proxy.runs.opaque_conflicts`), and if a secret's domains are edited in the vault to
cover one later, its CONNECTs go to the intercepting proxy as usual (:func:`decide_opaque`).
"""

from __future__ import annotations

from proxy.clienthello import Hello
from proxy.policy import Decision, allow, deny, split_host_port
from proxy.reasons import Reason
from proxy.runs import RunPolicy
from proxy.tunnels import Tunnel, norm, sni_refusal

OK = b"HTTP/1.1 200 Connection established\r\n\r\n"
HEAD_END = b"\r\n\r\n"
HEAD_LIMIT = 8192  # a CONNECT head longer than this is left to mitmproxy (which refuses it)
_CONNECT = b"CONNECT "


def could_be_connect(first: bytes) -> bool:
    """Could a stream starting with ``first`` be a CONNECT whose head is not complete yet?"""
    start = first[: len(_CONNECT)]
    return _CONNECT.startswith(start) and HEAD_END not in first and len(first) < HEAD_LIMIT


def parse_connect(head: bytes) -> tuple[str, int, int] | None:
    """The target host, port and head length of a complete CONNECT head at the start of
    ``head``; None for anything else (it goes to mitmproxy as it came)."""
    end = head.find(HEAD_END)
    if end < 0 or not head.startswith(_CONNECT):
        return None
    parts = head[: head.find(b"\r\n")].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].isascii():
        return None
    host, port = split_host_port(parts[1].decode("ascii"))
    if not host or port is None or not 1 <= port <= 65535:
        return None
    return norm(host), port, end + len(HEAD_END)


def decide_opaque(run: RunPolicy, host: str, port: int, *, cut_off: bool) -> Decision | None:
    """Is ``host:port`` one of the run's opaque destinations? None when it is not (or a secret
    of the run covers it now): mitmproxy handles the CONNECT as usual."""
    if not run.allow_opaque or not any(p.matches(host, port) for p in run.allow_opaque):
        return None
    if any(p.matches(host, port) for s in run.secrets for p in s.domains):
        return None
    if cut_off:
        return deny(Reason.UNEXPECTED_VALUE, "the run was cut off after an unexpected value")
    return allow(Reason.OPAQUE, "spliced without interception")


def hello_refusal(tunnel: Tunnel, hello: Hello | None) -> Decision | None:
    """Why the first bytes on an opaque tunnel may not go on (None: they may). ``hello`` is
    None when the client closed before a whole ClientHello came."""
    if hello is None or hello.not_tls or not hello.complete:
        return deny(
            Reason.NOT_TLS,
            f"the first bytes on the opaque tunnel to {tunnel.host} are no TLS ClientHello; "
            "opaque hosts take TLS only",
        )
    if hello.sni is None:
        return deny(
            Reason.SNI_MISMATCH,
            f"the TLS ClientHello names no server (SNI); an opaque tunnel to {tunnel.host} "
            "needs that name as its SNI",
        )
    return sni_refusal(tunnel, hello.sni)


def refusal_bytes(decision: Decision, status: int) -> bytes:
    """The HTTP answer refusing a CONNECT (as :func:`proxy.addon.refusal` words it)."""
    body = f"coatcheck refused this request ({decision.reason}): {decision.detail}\n".encode()
    phrase = {403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nX-Coatcheck-Reason: {decision.reason}\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
