from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidDomain, InvalidName, InvalidValue, UsageError
from tests.vault.helpers import SENTINEL
from vault.secret import SecretValue
from vault.validate import (
    MAX_NAME_LENGTH,
    MAX_VALUE_BYTES,
    validate_domains,
    validate_methods,
    validate_name,
    validate_paths,
    validate_placeholder_format,
    validate_surfaces,
    validate_value,
)

# -- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["GITHUB_TOKEN", "_private", "a", "lower_case", "A1_B2", "X" * MAX_NAME_LENGTH],
    ids=["env-style", "leading-underscore", "one-letter", "lower", "digits-inside", "max-len"],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "required"),
        ("1TOKEN", "must not start with a digit"),
        ("GITHUB-TOKEN", "only letters, digits and underscores"),
        ("GITHUB TOKEN", "only letters, digits and underscores"),
        ("TOKEN$", "only letters, digits and underscores"),
        ("TOKEN\n", "only letters, digits and underscores"),
        ("TÖKEN", "only letters, digits and underscores"),
        ("X" * (MAX_NAME_LENGTH + 1), f"at most {MAX_NAME_LENGTH}"),
    ],
    ids=["empty", "leading-digit", "dash", "space", "dollar", "newline", "non-ascii", "too-long"],
)
def test_invalid_names_say_why_and_give_an_example(name: str, why: str) -> None:
    with pytest.raises(InvalidName) as info:
        validate_name(name)
    assert why in info.value.message
    assert "use e.g. GITHUB_TOKEN" in info.value.message
    assert info.value.exit_code == 2


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "ghp_abc123",
        "with spaces and\ttab",
        "ünïcödé-🔑",
        "x" * MAX_VALUE_BYTES,
        " leading and trailing ",
        "12345678",
    ],
    ids=["token", "spaces-tab", "unicode", "max-size", "outer-spaces", "eight-bytes"],
)
def test_valid_values_pass_unchanged(value: str) -> None:
    secret = SecretValue(value)
    assert validate_value(secret) is secret


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (SENTINEL + "\r", ["carriage return (CR)"]),
        (SENTINEL + "\n", ["line feed (LF)"]),
        (SENTINEL[:5] + "\r\n" + SENTINEL[5:], ["carriage return (CR)", "line feed (LF)"]),
        ("\x00" + SENTINEL, ["NUL"]),
        (SENTINEL + "\n\x00", ["line feed (LF)", "NUL"]),
    ],
    ids=["cr", "lf", "crlf-inside", "nul", "lf-and-nul"],
)
def test_cr_lf_nul_refused_naming_the_character(value: str, names: list[str]) -> None:
    with pytest.raises(InvalidValue) as info:
        validate_value(SecretValue(value))
    message = info.value.message
    for name in names:
        assert name in message
    assert "Nothing was stored" in message
    assert SENTINEL not in message
    assert SENTINEL[:8] not in message


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("x" * (MAX_VALUE_BYTES + 1), f"at most {MAX_VALUE_BYTES}"),
        ("sk-1234", "at least 8"),
        ("é" * 3, "at least 8"),  # 6 bytes: counted in bytes
        ("1", "at least 8"),
        ("é" * (MAX_VALUE_BYTES // 2 + 1), f"at most {MAX_VALUE_BYTES}"),  # counted in bytes
    ],
    ids=["empty", "too-long", "too-long-in-utf8", "seven-bytes", "short-in-utf8", "one-byte"],
)
def test_empty_and_oversized_values_refused(value: str, why: str) -> None:
    with pytest.raises(InvalidValue) as info:
        validate_value(SecretValue(value))
    assert why in info.value.message
    assert "nothing was stored" in info.value.message


@given(
    prefix=st.text(max_size=20),
    bad=st.sampled_from(["\r", "\n", "\x00"]),
    suffix=st.text(max_size=20),
)
def test_any_value_with_cr_lf_or_nul_is_refused_without_echoing_it(
    prefix: str, bad: str, suffix: str
) -> None:
    value = SENTINEL + prefix + bad + suffix
    with pytest.raises(InvalidValue) as info:
        validate_value(SecretValue(value))
    assert SENTINEL not in str(info.value)
    assert value not in repr(info.value)


# -- domains (via core.domains) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given_domains", "expected"),
    [
        (["api.example.com"], ("api.example.com",)),
        (["*.b.example"], ("*.b.example",)),
        (["API.Example.COM."], ("api.example.com",)),
        (["a.example", "*.b.example"], ("a.example", "*.b.example")),
        (["b.example", "a.example"], ("b.example", "a.example")),
        (["api.example.com", "API.EXAMPLE.COM", "api.example.com."], ("api.example.com",)),
    ],
    ids=["exact", "wildcard", "normalized", "two", "order-kept", "deduped-after-normalizing"],
)
def test_valid_domains_are_canonical(given_domains: list[str], expected: tuple[str, ...]) -> None:
    assert validate_domains(given_domains) == expected


@pytest.mark.parametrize(
    "pattern",
    ["*", "*.com", "a*.example.com", "https://x.example", "x.example/path"],
    ids=["star", "star-tld", "mid-label-glob", "scheme", "path"],
)
def test_invalid_domains_refused(pattern: str) -> None:
    with pytest.raises(InvalidDomain):
        validate_domains(["ok.example", pattern])


def test_at_least_one_domain_required() -> None:
    with pytest.raises(InvalidDomain) as info:
        validate_domains([])
    assert "at least one domain" in info.value.message
    assert "--domains api.example.com" in info.value.message


def test_domains_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError):
        validate_domains("api.example.com")


# -- surfaces, methods, paths, placeholder format ----------------------------------------


@pytest.mark.parametrize(
    ("given_surfaces", "expected"),
    [
        (["header", "basic"], ("header", "basic")),
        (["query"], ("query",)),
        (["HEADER", " body "], ("header", "body")),
        (["header", "header"], ("header",)),
    ],
    ids=["default-pair", "query-only", "case-and-space", "deduped"],
)
def test_valid_surfaces(given_surfaces: list[str], expected: tuple[str, ...]) -> None:
    assert validate_surfaces(given_surfaces) == expected


@pytest.mark.parametrize(
    ("given_surfaces", "why"),
    [([], "at least one surface"), (["cookie"], "unknown surface 'cookie'"), ([""], "at least")],
    ids=["none", "unknown", "blank"],
)
def test_invalid_surfaces(given_surfaces: list[str], why: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_surfaces(given_surfaces)
    assert why in info.value.message
    assert "header, basic, query, body" in info.value.message


@pytest.mark.parametrize(
    ("given_methods", "expected"),
    [
        ([], ()),
        (["GET", "HEAD"], ("GET", "HEAD")),
        (["get", " post "], ("GET", "POST")),
        (["GET", "get"], ("GET",)),
        (["PROPFIND"], ("PROPFIND",)),
    ],
    ids=["any", "two", "upper-cased", "deduped", "extension-method"],
)
def test_valid_methods(given_methods: list[str], expected: tuple[str, ...]) -> None:
    assert validate_methods(given_methods) == expected


@pytest.mark.parametrize(
    ("method", "why"),
    [
        ("*", "leave out --methods"),
        ("GE T", "invalid HTTP method"),
        ("GET/1", "invalid HTTP method"),
        ("1GET", "invalid HTTP method"),
    ],
    ids=["star", "space", "slash", "leading-digit"],
)
def test_invalid_methods(method: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_methods([method])
    assert why in info.value.message


@pytest.mark.parametrize(
    ("given_paths", "expected"),
    [
        ([], ()),
        (["/"], ("/",)),
        (["/v1/*"], ("/v1/*",)),
        (["/repos/octo/"], ("/repos/octo/",)),
        (["/v1/*", "/v1/*"], ("/v1/*",)),
        (["/a%20b", "/*"], ("/a%20b", "/*")),
    ],
    ids=["any", "root", "prefix-star", "exact-prefix", "deduped", "escaped-and-all"],
)
def test_valid_paths(given_paths: list[str], expected: tuple[str, ...]) -> None:
    assert validate_paths(given_paths) == expected


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("v1/*", "must begin with '/'"),
        ("*", "must begin with '/'"),
        ("/v1/*/x", "'*' only at its end"),
        ("/v1/**", "'*' only at its end"),
        ("/v1?x=1", "query or fragment"),
        ("/v1#top", "query or fragment"),
        ("/v 1", "not allowed in a URL path"),
        ("/v1/../admin", "'..' segments"),
        ("/./x", "'..' segments"),
    ],
    ids=[
        "relative",
        "bare-star",
        "mid-star",
        "double-star",
        "query",
        "fragment",
        "space",
        "dotdot",
        "dot",
    ],
)
def test_invalid_paths(path: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_paths([path])
    assert why in info.value.message


@pytest.mark.parametrize("fmt", ["opaque", "shaped"])
def test_valid_placeholder_formats(fmt: str) -> None:
    assert validate_placeholder_format(fmt) == fmt


@pytest.mark.parametrize("fmt", ["", "Opaque", "random"], ids=["empty", "wrong-case", "unknown"])
def test_invalid_placeholder_formats(fmt: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_placeholder_format(fmt)
    assert "choose from opaque, shaped" in info.value.message
