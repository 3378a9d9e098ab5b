"""One request's rewrite: swaps in headers, query and body, leak scan, body refusals. Pure.

The addon hands in plain values (header fields, path, body) and applies the outcome; nothing
here knows mitmproxy. Proxy-only headers are dropped on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from proxy.decoders import DecodeError, stream_decoder
from proxy.leaks import LeakScanner
from proxy.policy import Decision, deny
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
    content_type: str = ""
    encoding: str = ""


def too_large() -> Decision:
    return deny("too_large", f"request body over {MAX_INSPECT_BYTES} bytes can't be checked")


def rewrite_head(fields: Fields, path: str, swaps: Sequence[Swap], scanner: LeakScanner) -> Outcome:
    """Swap placeholders in headers and query where ``swaps`` allow; scan for placeholders that
    must not go here. Runs before anything is sent upstream, streamed body or not.

    The hot path of every request: one leak scan over all header values and the path, and only
    headers that hold a placeholder (or a Basic credential) are decoded and rewritten.
    """
    out = Outcome(fields=fields, path=path)
    out.leaks = scanner.scan(b"\n".join(v for _, v in fields) + b"\n" + path.encode())
    needles = [s.placeholder.encode() for s in swaps]
    basic = any("basic" in s.surfaces for s in swaps)
    new_fields = []
    changed = False
    for key, raw in fields:
        name = key.lower()
        if name in PROXY_ONLY:
            changed = True
            continue
        if name == b"content-type":
            out.content_type = raw.decode("latin-1")
        elif name == b"content-encoding":
            out.encoding = raw.decode("latin-1")
        is_basic = raw[:6].lower() == b"basic "
        if is_basic:
            payload = basic_payload(raw.decode("latin-1"))
            if payload is not None:
                out.leaks |= scanner.scan_text(payload)
        if (basic and is_basic) or any(n in raw for n in needles):
            value, used = swap_header(raw.decode("utf-8", "surrogateescape"), swaps)
            if used:
                out.injected |= used
                raw = value.encode("utf-8", "surrogateescape")
                changed = True
        new_fields.append((key, raw))
    if changed:
        out.fields = tuple(new_fields)
    if "?" in path and any("query" in s.surfaces for s in swaps):
        base, _, query = path.partition("?")
        query, used = swap_query(query, swaps)
        out.injected |= used
        out.path = f"{base}?{query}"
    return out


def rewrite_body(out: Outcome, body: bytes, swaps: Sequence[Swap], scanner: LeakScanner) -> None:
    """For a buffered body: scan it (decoded), swap where a body surface allows, or refuse."""
    _body(out, body, out.content_type, out.encoding, swaps, scanner)


def _body(
    out: Outcome,
    body: bytes,
    content_type: str,
    encoding: str,
    swaps: Sequence[Swap],
    scanner: LeakScanner,
) -> None:
    if len(body) > MAX_INSPECT_BYTES:
        out.problem, out.status = too_large(), 413
        return
    plain = body
    try:
        decode = stream_decoder(encoding)
        if decode is not None:
            plain = decode(body) + decode(b"", final=True)
    except DecodeError:
        out.problem, out.status = deny("undecodable_body", "the request body can't be decoded"), 415
        return
    out.leaks |= scanner.scan(plain)
    body_swaps = [s for s in swaps if "body" in s.surfaces]
    placeholders = [s.placeholder for s in body_swaps]
    if not body_swaps or not mentions(plain, placeholders):
        return
    if decode is not None:
        out.problem = deny(
            "compressed_body",
            "a placeholder inside a compressed request body is not substituted; "
            "send the body uncompressed",
        )
    elif body_kind(content_type) == "multipart":
        out.problem = deny(
            "multipart_body",
            "a placeholder inside a multipart body is not substituted; use a header",
        )
    if out.problem is not None:
        out.status = 415
        return
    new, used = swap_body(body, content_type, body_swaps)
    if used:
        out.body = new
        out.injected |= used
