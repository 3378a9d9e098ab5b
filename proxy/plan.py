"""How one request and its response are handled: values the addon applies. Pure.

:func:`plan_request` answers, from the run's policy, the secrets that apply to the request and
the few facts of its head that matter (HTTP version, declared body length, placeholders found
leaking in headers or query):

- refuse it at once, and why: an HTTP version the proxy does not speak (``bad_request_line``,
  400), a placeholder on its way to the wrong host when the run blocks leaks
  (``placeholder_leak``, 403), a declared body too large to inspect when it must be
  (``too_large``, 413);
- or let the body **stream** upstream as it arrives, with a leak scanner that can only report,
  or **buffer** it for inspection and body-surface swaps (a body-surface secret applies, or the
  run blocks leaks).

:func:`leak_refusal` is the same leak rule for what is found later (a buffered body, a stream).

:func:`plan_response` answers, from a response's head and the run's scrub pairs, the head to
send on (scrubbed) and how its body passes: not at all, buffered and scrubbed whole, streamed
as is, or streamed through a decoder and the scrubber; or a refusal when it can't be scrubbed.
For a request that carried no value, a value in the head is refused (``unexpected_value``) and
the body is watched, not scrubbed (see :mod:`proxy.responses`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from proxy import responses
from proxy.decoders import DecodeError
from proxy.leaks import StreamLeakScanner
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.rewrite import MAX_INSPECT_BYTES, too_large
from proxy.runs import RunPolicy, RunSecret

Fields = tuple[tuple[bytes, bytes], ...]
Pairs = tuple[tuple[bytes, bytes], ...]  # (real value form, placeholder form), as scrub has them

HTTP_VERSIONS = frozenset(("HTTP/1.0", "HTTP/1.1", "HTTP/2.0"))


class BodyMode(StrEnum):
    STREAM = "stream"  # forwarded as it arrives; placeholders in it are reported, after the fact
    BUFFER = "buffer"  # held whole (up to MAX_INSPECT_BYTES), inspected, swapped, then sent


@dataclass(frozen=True, slots=True)
class RequestPlan:
    body: BodyMode
    refusal: Decision | None = None  # refuse the request with this, before anything is sent
    status: int = 403  # the refusal's HTTP status


def leak_refusal(run: RunPolicy, leaks: Collection[str]) -> Decision | None:
    """The refusal for placeholders found leaking, when the run blocks leaks (``--on-leak
    block``); None when nothing leaked or leaks are only reported."""
    if not leaks or run.on_leak != "block":
        return None
    return deny(
        Reason.PLACEHOLDER_LEAK,
        "a placeholder was on its way to a host outside its secret's domains",
    )


def plan_request(
    run: RunPolicy,
    secrets: Collection[RunSecret],
    *,
    http_version: str,
    content_length: str | None = None,
    head_leaks: Collection[str] = (),
) -> RequestPlan:
    """The plan for a request whose destination and head were checked.

    ``secrets`` are the ones that may be injected into it; ``content_length`` is its declared
    ``Content-Length`` (None without one); ``head_leaks`` the placeholder names found leaking in
    its headers and query. The first refusal that applies wins, in the order listed above.
    """
    needs_body = any("body" in s.surfaces for s in secrets) or run.on_leak == "block"
    body = BodyMode.BUFFER if needs_body else BodyMode.STREAM
    if http_version not in HTTP_VERSIONS:
        bad = deny(Reason.BAD_REQUEST_LINE, f"unsupported HTTP version {http_version!r}")
        return RequestPlan(body, bad, 400)
    leaked = leak_refusal(run, head_leaks)
    if leaked is not None:
        return RequestPlan(body, leaked, 403)
    declared = content_length or ""
    if needs_body and declared.isdigit() and int(declared) > MAX_INSPECT_BYTES:
        return RequestPlan(body, too_large(), 413)
    return RequestPlan(body)


def reporting_stream(scanner: StreamLeakScanner) -> Callable[[bytes], bytes]:
    """A request body's chunk callback when it streams: passed on as is, scanned on the way."""

    def scan(chunk: bytes) -> bytes:
        scanner.feed(chunk)
        return chunk

    return scan


class ResponseMode(StrEnum):
    HEAD_ONLY = "head_only"  # no body to pass (HEAD, 1xx, 204, 304)
    BUFFER = "buffer"  # small: read whole, scrubbed in one go, Content-Length kept
    STREAM = "stream"  # nothing to scrub: streamed as it arrives
    SCRUB = "scrub"  # streamed through a decoder and the scrubber


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    mode: ResponseMode
    fields: Fields  # the header fields to send on: scrubbed, adjusted for a SCRUB stream
    reason: str  # the status line's reason phrase, scrubbed
    stream: Callable[[bytes], list[bytes]] | None = None  # SCRUB: the chunk callback
    refusal: Decision | None = None  # the body can't be scrubbed: refuse in place (502)


class Headers(Protocol):
    """A head's headers: raw fields, and the value of a name (mitmproxy's Headers)."""

    @property
    def fields(self) -> Fields: ...

    def get(self, key: str, default: str, /) -> str: ...


class ResponseHead(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def reason(self) -> str: ...

    @property
    def http_version(self) -> str: ...

    @property
    def headers(self) -> Headers: ...


def plan_response(
    method: str,
    head: ResponseHead,
    pairs: Pairs,
    on_error: Callable[[Decision], None],
    *,
    injected: bool = True,
) -> ResponsePlan:
    """The plan for the response to a ``method`` request, from its ``head`` as received;
    ``injected``: whether the request carried a value. ``on_error`` is called with the refusal
    when a SCRUB stream turns out undecodable midway or brings back a value it should not have
    (it should abort the connection)."""
    fields, reason, status = head.headers.fields, head.reason, head.status_code
    if pairs:
        fields = responses.scrub_fields(fields, pairs)
        reason = responses.scrub_reason(reason, pairs)
        if not injected and (fields is not head.headers.fields or reason != head.reason):
            refused = responses.unexpected("the head")
            return ResponsePlan(ResponseMode.HEAD_ONLY, fields, reason, refusal=refused)
    if method == "HEAD" or status in (101, 204, 304) or status < 200:
        return ResponsePlan(ResponseMode.HEAD_ONLY, fields, reason)
    kind = {n: head.headers.get(n, "") for n in ("content-length", "content-type")}
    if responses.small_enough_to_buffer(kind):
        return ResponsePlan(ResponseMode.BUFFER, fields, reason)
    if not pairs:
        return ResponsePlan(ResponseMode.STREAM, fields, reason)
    try:
        encoding = head.headers.get("content-encoding", "")
        stream, decoded = responses.body_stream(pairs, encoding, on_error, injected=injected)
    except DecodeError as exc:
        undecodable = deny(Reason.UNDECODABLE_RESPONSE, str(exc))
        return ResponsePlan(ResponseMode.SCRUB, fields, reason, refusal=undecodable)
    if decoded:
        fields = _without(fields, b"content-encoding")
    if any(k.lower() == b"content-length" for k, _ in fields):
        fields = _without(fields, b"content-length")
        if head.http_version == "HTTP/1.1":
            fields = (*_without(fields, b"transfer-encoding"), (b"transfer-encoding", b"chunked"))
    return ResponsePlan(ResponseMode.SCRUB, fields, reason, stream)


def _without(fields: Fields, name: bytes) -> Fields:
    return tuple((k, v) for k, v in fields if k.lower() != name)
