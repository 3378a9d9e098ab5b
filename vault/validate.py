"""Parse what a user gives ``vault set`` into canonical values, or say how to fix it.

Pure functions, no I/O. Messages never contain a secret value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from core.errors import InvalidDomain, InvalidName, InvalidValue, UsageError
from vault.secret import PLACEHOLDER_FORMATS, SURFACES, PlaceholderFormat, SecretValue

MAX_NAME_LENGTH: Final = 128
MIN_VALUE_BYTES: Final = 8
MAX_VALUE_BYTES: Final = 64 * 1024

_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METHOD_RE: Final = re.compile(r"[A-Z][A-Z0-9_-]{0,31}")
# Printable ASCII that may appear in a path prefix; no query, fragment or whitespace.
_PATH_RE: Final = re.compile(r"/[A-Za-z0-9\-._~!$&'()+,;=:@%/]*\*?")

_FORBIDDEN: Final = (
    ("\r", "a carriage return (CR)"),
    ("\n", "a line feed (LF)"),
    ("\x00", "a NUL byte"),
)


def validate_name(name: str) -> str:
    """Return ``name`` if it is an environment-variable style name, else raise InvalidName."""
    example = "use e.g. GITHUB_TOKEN"
    if not name:
        raise InvalidName(f"a secret name is required; {example}")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"secret name is {len(name)} characters long, at most {MAX_NAME_LENGTH} are "
            f"allowed; {example}"
        )
    if not _NAME_RE.fullmatch(name):
        why = (
            "must not start with a digit"
            if name[0].isdigit()
            else "may contain only letters, digits and underscores"
        )
        raise InvalidName(f"invalid secret name {name!r}: a name {why}; {example}")
    return name


def validate_value(value: SecretValue, *, shaped: bool = False) -> SecretValue:
    """Return ``value`` if it can be injected safely, else raise InvalidValue.

    Refuses an empty value, CR, LF and NUL (header injection), values under 8 bytes (too short
    to scrub safely) and values over 64 KiB; with
    ``shaped``, a value too short for a shaped placeholder with 128 random bits.
    """
    raw = value.reveal()
    if not raw:
        raise InvalidValue("the secret value is empty; nothing was stored")
    found = [label for char, label in _FORBIDDEN if char in raw]
    if found:
        raise InvalidValue(
            f"the secret value contains {_join(found)}; values may not contain CR, LF or NUL "
            "because they could inject HTTP headers. Nothing was stored. Check for a line "
            "ending inside the value (only one trailing newline is stripped from stdin)"
        )
    size = len(raw.encode("utf-8", "surrogatepass"))
    if size < MIN_VALUE_BYTES:
        raise InvalidValue(
            f"the secret value is {size} bytes, at least {MIN_VALUE_BYTES} are required: the "
            "proxy scrubs real values out of responses, and a value this short can't be told "
            "apart from ordinary text or rebuilt from a few guesses; nothing was stored"
        )
    if size > MAX_VALUE_BYTES:
        raise InvalidValue(
            f"the secret value is {size} bytes, at most {MAX_VALUE_BYTES} are allowed; "
            "nothing was stored"
        )
    if shaped:
        from core.placeholders import mint_shaped

        mint_shaped(raw)  # UsageError naming the fix (--placeholder-format opaque)
    return value


def validate_domains(domains: Iterable[str]) -> tuple[str, ...]:
    """Return the canonical text of each domain pattern, deduplicated, in the given order."""
    from core.domains import parse_pattern  # lazy: core.domains owns the pattern rules

    if isinstance(domains, str):
        raise TypeError("validate_domains takes a list of patterns, not one string")

    canonical = _dedupe(str(parse_pattern(text)) for text in domains)
    if not canonical:
        raise InvalidDomain(
            "at least one domain is required, the secret is injected only there; "
            "use e.g. --domains api.example.com"
        )
    return canonical


def validate_surfaces(surfaces: Iterable[str]) -> tuple[str, ...]:
    """Return the surfaces a secret may be injected in, lower-cased and deduplicated."""
    result = _dedupe(s.strip().lower() for s in surfaces)
    choices = ", ".join(SURFACES)
    if not result:
        raise UsageError(
            f"at least one surface is required; choose from {choices} (default: header,basic)"
        )
    for surface in result:
        if surface not in SURFACES:
            raise UsageError(f"unknown surface {surface!r}; choose from {choices}")
    return result


def validate_methods(methods: Iterable[str]) -> tuple[str, ...]:
    """Return upper-case HTTP methods; an empty result means any method."""
    result = _dedupe(m.strip().upper() for m in methods)
    for method in result:
        if method == "*":
            raise UsageError("method '*' is not needed: leave out --methods to allow any method")
        if not _METHOD_RE.fullmatch(method):
            raise UsageError(f"invalid HTTP method {method!r}; use e.g. GET,HEAD")
    return result


def validate_paths(paths: Iterable[str]) -> tuple[str, ...]:
    """Return path prefix patterns; an empty result means any path.

    A pattern begins with ``/`` and may end with one ``*``; it names no query or fragment.
    """
    result = _dedupe(p.strip() for p in paths)
    for path in result:
        if not path.startswith("/"):
            raise UsageError(f"path pattern {path!r} must begin with '/'; use e.g. /v1/*")
        if "*" in path[:-1]:
            raise UsageError(f"path pattern {path!r} may have '*' only at its end; use e.g. /v1/*")
        if "?" in path or "#" in path:
            raise UsageError(
                f"path pattern {path!r} must not contain a query or fragment; use e.g. /v1/*"
            )
        if not _PATH_RE.fullmatch(path):
            raise UsageError(
                f"path pattern {path!r} contains a character not allowed in a URL path; "
                "use e.g. /v1/*"
            )
        segments = path.rstrip("*").split("/")
        if "." in segments or ".." in segments:
            raise UsageError(f"path pattern {path!r} must not contain '.' or '..' segments")
    return result


def validate_placeholder_format(placeholder_format: str) -> PlaceholderFormat:
    """Return ``opaque`` or ``shaped``, else raise UsageError."""
    if placeholder_format == "opaque":
        return "opaque"
    if placeholder_format == "shaped":
        return "shaped"
    raise UsageError(
        f"unknown placeholder format {placeholder_format!r}; "
        f"choose from {', '.join(PLACEHOLDER_FORMATS)}"
    )


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for item in items if item))


def _join(labels: list[str]) -> str:
    if len(labels) == 1:
        return labels[0]
    return ", ".join(labels[:-1]) + " and " + labels[-1]
