from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import (
    CoatcheckError,
    InvalidDomain,
    InvalidName,
    InvalidValue,
    KeystoreUnavailable,
    SecretNotFound,
    UsageError,
)
from tests.vault.helpers import SENTINEL, invoke, output_of
from vault.keystore import default_keystore
from vault.store import Vault


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "vault.key"
    monkeypatch.setenv("COATCHECK_VAULT_KEY_FILE", str(path))
    return path


def stored_value(home: Path, name: str) -> str:
    return Vault.open(home, keystore=default_keystore()).get(name).value.reveal()


def assert_error(result: object, error: type[CoatcheckError]) -> CoatcheckError:
    exc = result.exception  # type: ignore[attr-defined]
    assert isinstance(exc, error), (exc, result.output)  # type: ignore[attr-defined]
    assert exc.exit_code == error.exit_code
    return exc


def vault_bytes(home: Path) -> bytes:
    path = home / "vault.json"
    return path.read_bytes() if path.exists() else b""


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "set"),
        (["set"], "--domains"),
        (["set"], "not example.com itself"),
        (["set"], "stdin"),
        (["list"], "--json"),
        (["rm"], "NAME"),
    ],
    ids=["group", "set-domains", "set-apex-note", "set-stdin", "list", "rm"],
)
def test_help_everywhere(args: list[str], expected: str) -> None:
    result = invoke([*args, "--help"])
    assert result.exit_code == 0, result.output
    assert expected in " ".join(result.output.split())  # help text is wrapped


# -- set --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        (SENTINEL, SENTINEL),
        (SENTINEL + "\n", SENTINEL),
        (SENTINEL + "\r\n", SENTINEL),
        ("  " + SENTINEL + " \t\n", "  " + SENTINEL + " \t"),
        (SENTINEL.encode() + b"\n", SENTINEL),
        ("ünïcödé\n".encode(), "ünïcödé"),
    ],
    ids=["no-newline", "lf", "crlf", "other-whitespace-kept", "bytes", "utf8"],
)
def test_set_reads_stdin_and_strips_exactly_one_line_ending(
    home: Path, key_file: Path, stdin: str | bytes, expected: str
) -> None:
    result = invoke(["set", "GITHUB_TOKEN", "--domains", "api.github.com"], input=stdin)
    assert result.exit_code == 0, output_of(result)
    assert result.output == "stored GITHUB_TOKEN for api.github.com\n"
    assert stored_value(home, "GITHUB_TOKEN") == expected


@pytest.mark.parametrize(
    ("stdin", "error", "says"),
    [
        ("", InvalidValue, "no value on stdin"),
        ("\n", InvalidValue, "no value on stdin"),
        ("\r\n", InvalidValue, "no value on stdin"),
        (SENTINEL + "\n\n", InvalidValue, "line feed (LF)"),
        (SENTINEL + "\r\n\r\n", InvalidValue, "carriage return (CR)"),
        (SENTINEL + "\r", InvalidValue, "carriage return (CR)"),
        ("first\nsecond\n", InvalidValue, "line feed (LF)"),
        (SENTINEL + "\x00\n", InvalidValue, "NUL"),
        (b"\xff\xfe" + SENTINEL.encode(), InvalidValue, "not UTF-8"),
        ("x" * (64 * 1024 + 3), InvalidValue, "over 65536 bytes"),
    ],
    ids=[
        "empty",
        "only-lf",
        "only-crlf",
        "two-lf",
        "two-crlf",
        "bare-cr",
        "two-lines",
        "nul",
        "not-utf8",
        "too-big",
    ],
)
def test_bad_stdin_is_refused_and_nothing_stored(
    home: Path, key_file: Path, stdin: str | bytes, error: type[CoatcheckError], says: str
) -> None:
    result = invoke(["set", "TOKEN", "--domains", "a.example"], input=stdin)
    exc = assert_error(result, error)
    assert says in exc.message
    assert "nothing was stored" in exc.message.lower()
    assert SENTINEL not in exc.message + output_of(result)
    assert vault_bytes(home) == b""


def test_set_output_lists_canonical_domains(home: Path, key_file: Path) -> None:
    result = invoke(
        ["set", "TOKEN", "--domains", "a.example,*.b.example", "--domains", "A.EXAMPLE."],
        input=SENTINEL,
    )
    assert result.exit_code == 0, output_of(result)
    assert result.output == "stored TOKEN for a.example, *.b.example\n"
    assert SENTINEL not in output_of(result)


def test_set_with_all_options(home: Path, key_file: Path) -> None:
    result = invoke(
        [
            "set",
            "TOKEN",
            "--domains",
            "api.example.com",
            "--surfaces",
            "header,query",
            "--methods",
            "get,HEAD",
            "--paths",
            "/v1/*,/v2/",
            "--placeholder-format",
            "shaped",
        ],
        input=SENTINEL,
    )
    assert result.exit_code == 0, output_of(result)
    [meta] = Vault.open(home).list()
    assert meta.surfaces == ("header", "query")
    assert meta.methods == ("GET", "HEAD")
    assert meta.paths == ("/v1/*", "/v2/")
    assert meta.placeholder_format == "shaped"


def test_set_replaces(home: Path, key_file: Path) -> None:
    invoke(["set", "TOKEN", "--domains", "a.example"], input="old-secret-value\n")
    result = invoke(["set", "TOKEN", "--domains", "b.example"], input="new-secret-value\n")
    assert result.exit_code == 0
    assert stored_value(home, "TOKEN") == "new-secret-value"
    assert [m.domains for m in Vault.open(home).list()] == [("b.example",)]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["set", "BAD-NAME", "--domains", "a.example"], InvalidName),
        (["set", "TOKEN", "--domains", "*"], InvalidDomain),
        (["set", "TOKEN", "--domains", "*.com"], InvalidDomain),
        (["set", "TOKEN", "--domains", "https://x.example"], InvalidDomain),
        (["set", "TOKEN", "--domains", ","], InvalidDomain),
        (["set", "TOKEN", "--domains", "a.example", "--surfaces", "cookie"], UsageError),
        (["set", "TOKEN", "--domains", "a.example", "--methods", "G T"], UsageError),
        (["set", "TOKEN", "--domains", "a.example", "--paths", "v1/*"], UsageError),
    ],
    ids=[
        "bad-name",
        "star",
        "star-tld",
        "scheme",
        "empty-list",
        "bad-surface",
        "bad-method",
        "bad-path",
    ],
)
def test_set_refuses_bad_arguments(
    home: Path, key_file: Path, args: list[str], error: type[CoatcheckError]
) -> None:
    result = invoke(args, input=SENTINEL)
    exc = assert_error(result, error)
    assert exc.exit_code == 2
    assert SENTINEL not in exc.message + output_of(result)
    assert vault_bytes(home) == b""


@pytest.mark.parametrize(
    "args",
    [
        ["set", "TOKEN", SENTINEL, "--domains", "a.example"],
        ["set", "TOKEN", "--value", SENTINEL, "--domains", "a.example"],
        ["set", "TOKEN"],
        ["set", "TOKEN", "--placeholder-format", "pretty", "--domains", "a.example"],
    ],
    ids=["value-argument", "value-option", "no-domains", "bad-format"],
)
def test_click_usage_errors(home: Path, key_file: Path, args: list[str]) -> None:
    result = invoke(args, input="v-secret-value\n")
    assert result.exit_code == 2
    assert vault_bytes(home) == b""


def test_set_prompts_with_hidden_input_on_a_terminal(
    home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("vault.cli._stdin_is_terminal", lambda: True)
    result = invoke(["set", "TOKEN", "--domains", "a.example"], input=f"{SENTINEL}\n{SENTINEL}\n")
    assert result.exit_code == 0, output_of(result)
    assert "Value for TOKEN" in result.output
    assert SENTINEL not in output_of(result)  # hidden input is not echoed
    assert stored_value(home, "TOKEN") == SENTINEL


def test_set_without_a_keystore_names_both_fixes(home: Path) -> None:
    result = invoke(["set", "TOKEN", "--domains", "a.example"], input=SENTINEL)
    exc = assert_error(result, KeystoreUnavailable)
    assert "keyrings.alt" in exc.message
    assert "COATCHECK_VAULT_KEY_FILE=/path/to/keyfile" in exc.message
    assert vault_bytes(home) == b""


def test_set_creates_the_key_file_0600(home: Path, key_file: Path) -> None:
    assert (
        invoke(["set", "TOKEN", "--domains", "a.example"], input="v-secret-valueNone").exit_code
        == 0
    )
    assert key_file.stat().st_mode & 0o777 == 0o600


# -- list -------------------------------------------------------------------------------------


def test_list_empty_says_how_to_add(home: Path) -> None:
    result = invoke(["list"])
    assert result.exit_code == 0
    assert "empty" in result.output
    assert "coatcheck vault set" in result.output


def test_list_json_empty(home: Path) -> None:
    result = invoke(["list", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == []


def _populate() -> None:
    for name, domains in [("B_TOKEN", "b.example,*.c.example"), ("A_TOKEN", "a.example")]:
        result = invoke(["set", name, "--domains", domains], input=SENTINEL + name)
        assert result.exit_code == 0, output_of(result)


def test_list_table(home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate()
    monkeypatch.delenv("COATCHECK_VAULT_KEY_FILE")  # list needs no keystore
    result = invoke(["list"])
    assert result.exit_code == 0, output_of(result)
    lines = result.output.splitlines()
    assert lines[0].split() == [
        "NAME", "DOMAINS", "SURFACES", "CREATED", "UPDATED", "AGE", "ROTATE", "DUE",
    ]  # fmt: skip
    assert lines[1].split()[:3] == ["A_TOKEN", "a.example", "header,basic"]
    assert lines[1].split()[5:] == ["0d", "-", "-"]
    assert lines[2].split()[:3] == ["B_TOKEN", "b.example,*.c.example", "header,basic"]
    assert lines[1].split()[3].endswith("Z")
    assert SENTINEL not in output_of(result)


def test_list_json(home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate()
    monkeypatch.delenv("COATCHECK_VAULT_KEY_FILE")
    result = invoke(["list", "--json"])
    assert result.exit_code == 0, output_of(result)
    assert SENTINEL not in result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows] == ["A_TOKEN", "B_TOKEN"]
    assert rows[1]["domains"] == ["b.example", "*.c.example"]
    assert rows[1]["surfaces"] == ["header", "basic"]
    for row in rows:
        assert {"name", "domains", "surfaces", "created", "updated"} <= set(row)
        assert row["created"].endswith("Z")
        assert "value" not in row


def test_list_reports_a_corrupt_vault(home: Path) -> None:
    home.mkdir()
    (home / "vault.json").write_text("{nope")
    result = invoke(["list"])
    exc = assert_error(result, CoatcheckError)
    assert str(home / "vault.json") in exc.message


# -- rm ---------------------------------------------------------------------------------------


def test_rm(home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _populate()
    monkeypatch.delenv("COATCHECK_VAULT_KEY_FILE")  # rm needs no keystore either
    result = invoke(["rm", "A_TOKEN"])
    assert result.exit_code == 0, output_of(result)
    assert result.output == "removed A_TOKEN\n"
    assert [m.name for m in Vault.open(home).list()] == ["B_TOKEN"]


def test_rm_missing_says_how_to_list(home: Path) -> None:
    result = invoke(["rm", "NOPE"])
    exc = assert_error(result, SecretNotFound)
    assert "coatcheck vault list" in exc.message
