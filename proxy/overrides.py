"""Requests whose method a server may read as another one than their request line's. Pure.

A secret's method rule (``vault set --methods GET``) holds only if the upstream acts on the
method the proxy checked. Many frameworks let a request say otherwise: an
``X-HTTP-Method-Override``, ``X-HTTP-Method`` or ``X-Method-Override`` header (Rails, Express's
method-override, ASP.NET, Google APIs; through CGI and WSGI a ``_`` in a header name reads as
``-``), a ``_method`` query parameter, or a ``_method`` field of a form body (Rails, Laravel,
Symfony read it from ``application/x-www-form-urlencoded`` and ``multipart/form-data``).

So a request carrying any of these gets no value from a secret that has method rules: it goes
on with the placeholder as the sandbox sent it (which, like any placeholder going where its
secret does not apply, is a ``placeholder_leak`` signal and refused under ``--on-leak
block``). The form body is not read: a form content type is enough, as the body may stream.
Secrets without method rules are unaffected.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from proxy.runs import RunSecret

Fields = tuple[tuple[bytes, bytes], ...]
OVERRIDE_HEADERS = frozenset((b"x-http-method-override", b"x-http-method", b"x-method-override"))
FORM_TYPES = frozenset((b"application/x-www-form-urlencoded", b"multipart/form-data"))
OVERRIDE_PARAM = "_method"


def may_override_method(fields: Fields, path: str) -> bool:
    """Whether a server may take the request for another method than its request line's."""
    for key, value in fields:
        name = key.lower().replace(b"_", b"-")
        if name in OVERRIDE_HEADERS:
            return True
        if name == b"content-type" and value.split(b";", 1)[0].strip().lower() in FORM_TYPES:
            return True
    _, _, query = path.partition("?")
    query = query.split("#", 1)[0].replace(";", "&")  # (Rack once split on ";" too)
    params = parse_qsl(query, keep_blank_values=True)
    return any(k.strip().lower() == OVERRIDE_PARAM for k, _ in params)


def honouring_method_rules(
    secrets: tuple[RunSecret, ...], fields: Fields, path: str
) -> tuple[RunSecret, ...]:
    """``secrets`` without those with method rules when the request may override its method."""
    if not any(s.methods for s in secrets) or not may_override_method(fields, path):
        return secrets
    return tuple(s for s in secrets if not s.methods)
