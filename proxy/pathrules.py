"""Path rules of a secret (``vault set --paths``): which request paths a rule matches.

A rule is ``/v1/*`` (``/v1/`` and everything below it) or an exact path. A request path matches
only through its *canonical* form, and a path that servers could route differently from how the
rule reads it has none, so it matches no rule and gets no value. Web servers disagree about:

- dot segments, plain or encoded (``/v1/../admin``, ``/v1/%2e%2e/admin``, ``%c0%ae`` overlong
  UTF-8, IIS's ``%u002e``), double encoding (``%252e``), and trailing-dot trimming (``...``,
  ``name.``);
- path parameters: Tomcat and Spring drop ``;...`` from a segment, so ``/v1/..;/admin`` is
  ``/admin`` to them;
- separators: ``\\``, ``%2f``, ``%5c``, empty segments (``//``);
- control and non-ASCII bytes (``..%00``, ``..%09``), which some servers strip or truncate at.

So the canonical form allows only RFC 3986 path characters without ``;``, and percent-escapes
only of letters, digits, ``-``, ``_`` and ``~`` (which every server decodes the same way), and
no segment ending in a dot. Pure: no I/O.
"""

from __future__ import annotations

import string

_PLAIN = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,=:@/")
_DECODABLE = frozenset(string.ascii_letters + string.digits + "-_~")
_HEX = frozenset(string.hexdigits)


def canonical_path(target: str) -> str | None:
    """The path part of a request target as every server reads it, or None when they could
    read it differently (then no path rule matches it)."""
    path = target.split("?", 1)[0]
    if not path.startswith("/") or "#" in path:
        return None
    out: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "%":
            code = path[i + 1 : i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                return None
            decoded = chr(int(code, 16))
            if decoded not in _DECODABLE:
                return None
            out.append(decoded)
            i += 3
            continue
        if char not in _PLAIN:
            return None
        out.append(char)
        i += 1
    canonical = "".join(out)
    segments = canonical.split("/")[1:]
    for n, segment in enumerate(segments):
        if segment == "" and n != len(segments) - 1:
            return None  # an empty segment: `//` (a trailing `/` is fine)
        if segment.endswith("."):
            return None  # `.`, `..`, `...`, `name.`: IIS trims trailing dots (`...` is `..`)
    return canonical


def path_matches(rule: str, target: str) -> bool:
    """``/v1/*`` matches ``/v1/`` and below; a rule without ``*`` matches that exact path.
    Both compare the canonical path; an ambiguous path matches no rule."""
    path = canonical_path(target)
    if path is None:
        return False
    if rule.endswith("*"):
        return path.startswith(rule[:-1])
    return path == rule
