"""Domain patterns: which host names a run may reach. Pure.

A pattern is an exact host name or a leading ``*.`` wildcard, optionally with a port:

    api.example.com         that name only, every port
    api.example.com:8443    that name, port 8443 only
    *.example.com           every subdomain at any depth (a.example.com, a.b.example.com),
                            but NOT the apex example.com: list "example.com" too if you want it

Matching is exact label-suffix matching on normalized names: ``sentry.io.evil.test`` never
matches ``sentry.io``, ``evilexample.com`` never matches ``*.example.com``. There are no
regexes and no globs other than the leading ``*.``.

Normalization (:func:`normalize_host`): lower case, one trailing dot trimmed, Unicode labels to
IDNA A-labels (UTS #46 mapping, IDNA 2008 via the ``idna`` package: ``bücher.de`` becomes
``xn--bcher-kva.de``), brackets around an IPv6 literal stripped. Labels are 1-63 characters of
letters, digits, hyphen and underscore, not starting or ending with a hyphen; names are at most
253 characters. The underscore is accepted because real names carry it (``_dmarc``, some cloud
service hosts); accepting it can't widen a match, which is always label for label. An A-label
given as ``xn--...`` is taken as it is, without decoding it.

Refused as patterns, each with the fix in the message: ``*``; wildcards over a single label
(``*.com``: at least two labels must follow ``*.``; there is no public-suffix list, so
``*.co.uk`` is accepted); globs anywhere but a whole leading label; schemes, paths, queries,
user info, whitespace and regex syntax; IP literals (patterns are names: allow address ranges
with the separate ``--allow-cidr`` option); ports outside 1-65535.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Address

import idna

from core.addresses import parse_ip_literal
from core.errors import InvalidDomain

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_MAX_INPUT = 1024
_REGEX_CHARS = frozenset("^$\\()[]{}|+")
_GENERIC_FIX = 'use a name like "api.example.com" or "*.example.com"'


def _q(text: str) -> str:
    """Quote user text for a message, escaping anything a terminal could misread."""
    return f'"{text}"' if text.isprintable() else json.dumps(text)


@lru_cache(maxsize=8192)
def normalize_host(host: str) -> str:
    """The canonical form of a host name or IP literal; InvalidDomain if it is neither.

    Idempotent: ``normalize_host(normalize_host(h)) == normalize_host(h)``.
    """
    if len(host) > _MAX_INPUT:
        raise InvalidDomain(f"invalid host name: longer than {_MAX_INPUT} characters")
    if host.startswith("[") and host.endswith("]"):
        return _ipv6(host[1:-1], host)
    if ":" in host:
        return _ipv6(host, host)
    name = host if host.isascii() else _remap(host)
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidDomain(f"invalid host name {_q(host)}: it is empty")
    labels = [label if label.isascii() else _alabel(label, host) for label in name.split(".")]
    for label in labels:
        if not label:
            raise InvalidDomain(f"invalid host name {_q(host)}: empty label between dots")
        if len(label) > 63:
            raise InvalidDomain(f"invalid host name {_q(host)}: a label is longer than 63")
        if not _LABEL.fullmatch(label):
            raise InvalidDomain(
                f"invalid host name {_q(host)}: labels are letters, digits, '-' and '_', "
                "and don't start or end with '-'"
            )
    name = ".".join(labels)
    if len(name) > 253:
        raise InvalidDomain(f"invalid host name {_q(host)}: longer than 253 characters")
    return name


def _ipv6(text: str, original: str) -> str:
    try:
        return str(IPv6Address(text.lower() if "%" not in text else text))
    except ValueError:
        raise InvalidDomain(f"invalid host name {_q(original)}: not an IPv6 address") from None


def _remap(host: str) -> str:
    try:
        return str(idna.uts46_remap(host, std3_rules=False, transitional=False))
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomain(f"invalid host name {_q(host)}: not a valid IDNA name") from None


def _alabel(label: str, host: str) -> str:
    try:
        return bytes(idna.alabel(label)).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidDomain(f"invalid host name {_q(host)}: not a valid IDNA name") from None


@dataclass(frozen=True, slots=True)
class DomainPattern:
    """A parsed pattern. Build it with :func:`parse_pattern`; ``host`` is normalized."""

    host: str
    wildcard: bool = False
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """Does ``host:port`` fall under this pattern? Never raises: a bad host matches nothing."""
        try:
            name = normalize_host(host)
        except InvalidDomain:
            return False
        return self._matches_normalized(name, port)

    def _matches_normalized(self, name: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return name.endswith("." + self.host)
        return name == self.host

    def __str__(self) -> str:
        text = f"*.{self.host}" if self.wildcard else self.host
        return text if self.port is None else f"{text}:{self.port}"


def _refuse(text: str, why: str, fix: str | None = None) -> InvalidDomain:
    hint = f"use {_q(fix)}" if fix is not None else _GENERIC_FIX
    return InvalidDomain(f"incorrect domain pattern {_q(text)}: {why}; {hint}")


def _suggest(text: str) -> str | None:
    """Best guess at what a refused pattern meant, if that guess is itself a valid pattern."""
    t = "".join(text.split()).removeprefix("^").removesuffix("$").replace("\\", "")
    t = t.split("://", 1)[-1]
    t = re.split(r"[/?#]", t, maxsplit=1)[0].rpartition("@")[2]
    t = t.replace("(", "").replace(")", "")
    if t.startswith(".*"):
        t = t[1:]
    if t.startswith("*") and not t.startswith("*.") and t.count("*") == 1:
        t = "*." + t[1:]
    if "*" in t:
        labels = t.split(".")
        last = max(i for i, label in enumerate(labels) if "*" in label)
        t = "*." + ".".join(labels[last + 1 :])
    try:
        return str(_parse(t, hints=False))
    except InvalidDomain:
        return None


def parse_pattern(text: str) -> DomainPattern:
    """Parse one pattern (see the module docstring); InvalidDomain with the fix if refused."""
    return _parse(text, hints=True)


def _parse(text: str, *, hints: bool) -> DomainPattern:
    def fix(candidate: str) -> str | None:
        return _suggest(candidate) if hints else None

    if not text or text.isspace():
        raise _refuse(text, "it is empty")
    if any(ch.isspace() for ch in text):
        raise _refuse(text, "whitespace is not allowed", fix(text))
    if "://" in text:
        raise _refuse(text, "a pattern is a host name, not a URL", fix(text))
    if ip := _ip_in(text):
        raise _ip_refusal(text, ip)
    if any(ch in _REGEX_CHARS for ch in text):
        raise _refuse(text, "patterns are not regular expressions", fix(text))
    if any(ch in "/?#" for ch in text):
        raise _refuse(text, "paths, queries and fragments are not part of a pattern", fix(text))
    if "@" in text:
        raise _refuse(text, "user info is not part of a pattern", fix(text))
    host, port = _split_port(text, fix)
    if parse_ip_literal(host) is not None:
        raise _ip_refusal(text, host)
    wildcard = host.startswith("*.")
    rest = host[2:] if wildcard else host
    if host == "*":
        raise _refuse(text, "it would allow every host; name the domains", "*.example.com")
    if "*" in rest:
        raise _refuse(text, "'*' is only allowed as a whole leading label", fix(text))
    if not wildcard and rest.startswith("."):
        raise InvalidDomain(
            f"incorrect domain pattern {_q(text)}: a leading dot is ambiguous; use "
            f'"*{rest}" for its subdomains or "{rest[1:]}" for the name itself'
        )
    try:
        name = normalize_host(rest)
    except InvalidDomain as e:
        raise _refuse(text, e.message.rsplit(": ", 1)[-1]) from None
    if name.rpartition(".")[2].isdigit():
        raise _refuse(text, "the last label is a number, which reads as an IP address")
    if wildcard and "." not in name:
        raise _refuse(
            text,
            "a wildcard needs at least two labels after '*.' (it would cover a whole TLD)",
            "*.example.com",
        )
    return DomainPattern(name, wildcard, port)


def _ip_in(text: str) -> str | None:
    """The address if ``text`` is an IPv6 literal (bracketed, with or without a port, or bare)."""
    if text.startswith("["):
        inner = text[1:].partition("]")[0]
    elif text.count(":") > 1:
        inner = text
    else:
        return None
    return inner if parse_ip_literal(inner) is not None else None


def _ip_refusal(text: str, host: str) -> InvalidDomain:
    ip = parse_ip_literal(host)
    cidr = f"{ip}/{ip.max_prefixlen}" if ip is not None else "10.0.0.0/8"
    return InvalidDomain(
        f"incorrect domain pattern {_q(text)}: IP addresses are not domain patterns; "
        f"allow an address range with --allow-cidr {cidr}"
    )


def _split_port(text: str, fix: Callable[[str], str | None]) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if port in ("", "*"):
        raise _refuse(text, "a pattern matches every port unless it names one", fix(host))
    if not (port.isascii() and port.isdigit()):
        raise _refuse(text, f"port {_q(port)} is not a number", fix(host))
    number = int(port)
    if not 1 <= number <= 65535:
        raise _refuse(text, f"port {number} is outside 1-65535", fix(host))
    return host, number


def parse_patterns(texts: Iterable[str]) -> tuple[DomainPattern, ...]:
    """Parse many patterns; each text may hold comma-separated items. Deduplicated, in order."""
    out: dict[DomainPattern, None] = {}
    for text in texts:
        items = text.split(",")
        for item in items:
            item = item.strip() if len(items) > 1 else item
            if not item and len(items) > 1:
                raise InvalidDomain(
                    f"incorrect domain pattern list {_q(text)}: an empty item; "
                    "remove the extra comma"
                )
            out.setdefault(parse_pattern(item), None)
    return tuple(out)


def matches_any(patterns: Iterable[DomainPattern], host: str, port: int) -> DomainPattern | None:
    """The first pattern that matches ``host:port``, or None. Never raises."""
    try:
        name = normalize_host(host)
    except InvalidDomain:
        return None
    for pattern in patterns:
        if pattern._matches_normalized(name, port):
            return pattern
    return None
