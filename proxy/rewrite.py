"""One request's rewrite: swaps in headers, query and body, leak scan, body refusals. Pure.

The addon hands in plain values (header fields, path, body) and applies the outcome; nothing
here knows mitmproxy. Proxy-only headers are dropped on the way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from proxy.decoders import DecodeError, stream_decoder
from proxy.leaks import LeakScanner
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.substitute import (
    Swap,
    basic_payload,
    body_kind,
    mentions,
    swap_body,
    swap_header,
    swap_query,
)

MAX_INSPECT_BYTES = 16 * 1024 * 1024
PROXY_ONLY = frozenset((b"proxy-authorization", b"proxy-connection", b"proxy-authenticate"))
Fields = tuple[tuple[bytes, bytes], ...]


@dataclass
class Outcome:
    fields: Fields
    path: str
    body: bytes | None = None  # None: unchanged
    injected: set[str] = field(default_factory=set)
    leaks: set[str] = field(default_factory=set)
    problem: Decision | None = None
    status: int = 403


def too_large() -> Decision:
    return deny(Reason.TOO_LARGE, f"request body over {MAX_INSPECT_BYTES} bytes can't be checked")


_BASIC = re.compile(rb"(?i)basic ")


def rewrite_head(fields: Fields, path: str, swaps: Sequence[Swap], scanner: LeakScanner) -> Outcome:
    """Swap placeholders in headers and query where ``swaps`` allow; scan for placeholders that
    must not go here. Runs before anything is sent upstream, streamed body or not.

    The hot path of every request: one leak scan over all header values and the path; headers
    are only walked when one holds a placeholder, a Basic credential or is proxy-only.
    """
    out = Outcome(fields=fields, path=path)
    values = b"\n".join(v for _, v in fields)
    out.leaks = scanner.scan(values + b"\n" + path.encode())
    needles = [s.placeholder.encode() for s in swaps if s.placeholder.encode() in values]
    has_basic = _BASIC.search(values) is not None
    names = [k.lower() for k, _ in fields]
    if needles or has_basic or not PROXY_ONLY.isdisjoint(names):
        _walk(out, fields, names, needles, swaps, scanner)
    if "?" in path and any("query" in s.surfaces for s in swaps):
        base, _, query = path.partition("?")
        query, used = swap_query(query, swaps)
        out.injected |= used
        out.path = f"{base}?{query}"
    return out


def _walk(
    out: Outcome,
    fields: Fields,
    names: list[bytes],
    needles: list[bytes],
    swaps: Sequence[Swap],
    scanner: LeakScanner,
) -> None:
    new_fields = []
    for (key, raw), name in zip(fields, names, strict=True):
        if name in PROXY_ONLY:
            continue
        is_basic = raw[:6].lower() == b"basic "
        if is_basic:
            payload = basic_payload(raw.decode("latin-1"))
            if payload is not None:
                out.leaks |= scanner.scan_text(payload)
        if is_basic or any(n in raw for n in needles):
            value, used = swap_header(raw.decode("utf-8", "surrogateescape"), swaps)
            if used:
                out.injected |= used
                raw = value.encode("utf-8", "surrogateescape")
        new_fields.append((key, raw))
    out.fields = tuple(new_fields)


def rewrite_body(
    out: Outcome,
    body: bytes,
    content_type: str,
    encoding: str,
    swaps: Sequence[Swap],
    scanner: LeakScanner,
) -> None:
    """For a buffered body: scan it (decoded), swap where a body surface allows, or refuse."""
    if len(body) > MAX_INSPECT_BYTES:
        out.problem, out.status = too_large(), 413
        return
    plain = body
    try:
        decode = stream_decoder(encoding)
        if decode is not None:
            plain = decode(body) + decode(b"", final=True)
    except DecodeError:
        out.problem, out.status = (
            deny(Reason.UNDECODABLE_BODY, "the request body can't be decoded"),
            415,
        )
        return
    out.leaks |= scanner.scan(plain)
    body_swaps = [s for s in swaps if "body" in s.surfaces]
    placeholders = [s.placeholder for s in body_swaps]
    if not body_swaps or not mentions(plain, placeholders):
        return
    if decode is not None:
        out.problem = deny(
            Reason.COMPRESSED_BODY,
            "a placeholder inside a compressed request body is not substituted; "
            "send the body uncompressed",
        )
    elif body_kind(content_type) == "multipart":
        out.problem = deny(
            Reason.MULTIPART_BODY,
            "a placeholder inside a multipart body is not substituted; use a header",
        )
    if out.problem is not None:
        out.status = 415
        return
    new, used = swap_body(body, content_type, body_swaps)
    if used:
        out.body = new
        out.injected |= used
