from __future__ import annotations

import base64
import errno
import json
import logging
import multiprocessing
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from core.errors import (
    CoatcheckError,
    InvalidDomain,
    InvalidName,
    InvalidValue,
    KeystoreUnavailable,
    SecretNotFound,
    UsageError,
    VaultCorrupt,
    VaultError,
)
from tests.vault.helpers import SENTINEL, RaisingKeystore, concurrent_setter
from vault.crypto import generate_key
from vault.keystore import MemoryKeystore
from vault.secret import SecretValue
from vault.store import MISSING, Vault

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def vault(home: Path, keystore: MemoryKeystore) -> Vault:
    return Vault.open(home, keystore=keystore)


def vault_file(home: Path) -> Path:
    return home / "vault.json"


def edit_file(home: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(vault_file(home).read_text())
    edit(doc)
    vault_file(home).write_text(json.dumps(doc))


def all_bytes_under(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


# -- the basics ------------------------------------------------------------------------------


def test_set_then_get(vault: Vault) -> None:
    meta = vault.set("GITHUB_TOKEN", SecretValue(SENTINEL), ["api.github.com"])
    secret = vault.get("GITHUB_TOKEN")
    assert secret.value.reveal() == SENTINEL
    assert secret.meta == meta
    assert meta.domains == ("api.github.com",)
    assert meta.surfaces == ("header", "basic")
    assert (meta.methods, meta.paths, meta.placeholder_format) == ((), (), "opaque")


def test_set_stores_canonical_rules(vault: Vault) -> None:
    meta = vault.set(
        "TOKEN",
        SecretValue("ghp_" + "aB3x" * 10),  # long enough for a shaped placeholder
        ["API.Example.COM.", "*.b.example", "api.example.com"],
        surfaces=["header", "QUERY"],
        methods=["get", "HEAD"],
        paths=["/v1/*"],
        placeholder_format="shaped",
    )
    assert meta.domains == ("api.example.com", "*.b.example")
    assert meta.surfaces == ("header", "query")
    assert meta.methods == ("GET", "HEAD")
    assert meta.paths == ("/v1/*",)
    assert meta.placeholder_format == "shaped"
    assert vault.list() == [meta]
    assert vault.get("TOKEN").meta == meta


def test_list_is_sorted_by_name(vault: Vault) -> None:
    for name in ["C_TOKEN", "A_TOKEN", "B_TOKEN"]:
        vault.set(name, SecretValue("v-secret-value"), ["a.example"])
    assert [m.name for m in vault.list()] == ["A_TOKEN", "B_TOKEN", "C_TOKEN"]


def test_replace_keeps_created_and_bumps_updated(home: Path, keystore: MemoryKeystore) -> None:
    clock = Clock()
    vault = Vault.open(home, keystore=keystore, clock=clock)
    first = vault.set("TOKEN", SecretValue("old-secret-value"), ["a.example"])
    clock.now = T0 + timedelta(hours=1)
    second = vault.set("TOKEN", SecretValue("new-secret-value"), ["b.example"])
    assert first.created == first.updated == T0
    assert second.created == T0
    assert second.updated == T0 + timedelta(hours=1)
    assert second.domains == ("b.example",)
    assert vault.get("TOKEN").value.reveal() == "new-secret-value"
    assert vault.list() == [second]


def test_times_are_stored_in_utc(home: Path, keystore: MemoryKeystore) -> None:
    paris = timezone(timedelta(hours=2))
    vault = Vault.open(home, keystore=keystore, clock=Clock(datetime(2025, 6, 1, 12, tzinfo=paris)))
    vault.set("TOKEN", SecretValue("v-secret-value"), ["a.example"])
    [meta] = vault.list()
    assert meta.created == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert meta.created.utcoffset() == timedelta(0)


def test_remove(vault: Vault) -> None:
    vault.set("A", SecretValue("a-secret-value"), ["a.example"])
    vault.set("B", SecretValue("b-secret-value"), ["b.example"])
    vault.remove("A")
    assert [m.name for m in vault.list()] == ["B"]
    with pytest.raises(SecretNotFound):
        vault.get("A")
    assert set(vault.load_all()) == {"B"}


@pytest.mark.parametrize("op", ["get", "remove"])
@pytest.mark.parametrize("populated", [False, True], ids=["no-file", "other-secrets"])
def test_missing_name_says_how_to_list(vault: Vault, op: str, populated: bool) -> None:
    if populated:
        vault.set("OTHER", SecretValue("v-secret-value"), ["a.example"])
    with pytest.raises(SecretNotFound) as info:
        getattr(vault, op)("NOPE")
    assert "NOPE" in info.value.message
    assert "coatcheck vault list" in info.value.message


def test_missing_file_is_an_empty_vault(home: Path) -> None:
    keystore = RaisingKeystore()
    vault = Vault.open(home, keystore=keystore)
    assert vault.list() == []
    assert vault.load_all() == {}
    assert vault.snapshot() == (MISSING, {})
    assert vault.version() == MISSING
    assert keystore.calls == 0
    assert not home.exists()  # reading creates nothing


def test_load_all(vault: Vault) -> None:
    vault.set("A", SecretValue("value-a-secret-value"), ["a.example"])
    vault.set("B", SecretValue("value-b-secret-value"), ["*.b.example"])
    loaded = vault.load_all()
    assert {name: s.value.reveal() for name, s in loaded.items()} == {
        "A": "value-a-secret-value",
        "B": "value-b-secret-value",
    }
    assert loaded["B"].meta.domains == ("*.b.example",)


# -- what is on disk -------------------------------------------------------------------------


def test_value_is_not_on_disk_in_any_form(home: Path, vault: Vault) -> None:
    vault.set("GITHUB_TOKEN", SecretValue(SENTINEL), ["api.github.com"])
    on_disk = all_bytes_under(home)
    assert SENTINEL.encode() not in on_disk
    assert base64.b64encode(SENTINEL.encode()) not in on_disk
    assert SENTINEL.encode().hex().encode() not in on_disk
    assert b"api.github.com" in on_disk  # metadata is plain text, on purpose


@pytest.mark.parametrize("mask", [0o000, 0o022], ids=["umask-000", "umask-022"])
def test_private_permissions(home: Path, keystore: MemoryKeystore, mask: int) -> None:
    old = os.umask(mask)
    try:
        Vault.open(home, keystore=keystore).set(
            "TOKEN", SecretValue("v-secret-value"), ["a.example"]
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(vault_file(home).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "vault.lock").stat().st_mode) == 0o600


def test_file_format(home: Path, vault: Vault) -> None:
    vault.set(
        "TOKEN", SecretValue("v-secret-value"), ["a.example"], methods=["GET"], paths=["/v1/*"]
    )
    doc = json.loads(vault_file(home).read_text())
    assert doc["format"] == "coatcheck-vault"
    assert doc["version"] == 1
    assert isinstance(doc["key_id"], str)
    record = doc["secrets"]["TOKEN"]
    assert record["domains"] == ["a.example"]
    assert record["surfaces"] == ["header", "basic"]
    assert record["methods"] == ["GET"]
    assert record["paths"] == ["/v1/*"]
    assert record["placeholder_format"] == "opaque"
    assert record["created"].endswith("Z")
    assert len(base64.b64decode(record["nonce"])) == 12
    assert base64.b64decode(record["ciphertext"])


# -- tampering -------------------------------------------------------------------------------


def _set_field(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["secrets"]["TOKEN"][field] = value

    return edit


def _rename(doc: dict[str, Any]) -> None:
    doc["secrets"]["EVIL"] = doc["secrets"].pop("TOKEN")


def _swap_ciphertexts(doc: dict[str, Any]) -> None:
    a, b = doc["secrets"]["TOKEN"], doc["secrets"]["OTHER"]
    a["nonce"], b["nonce"] = b["nonce"], a["nonce"]
    a["ciphertext"], b["ciphertext"] = b["ciphertext"], a["ciphertext"]


@pytest.mark.parametrize(
    "edit",
    [
        _set_field("domains", ["api.github.com", "evil.example"]),
        _set_field("domains", ["evil.example"]),
        _set_field("domains", ["*.github.com"]),
        _set_field("surfaces", ["header", "basic", "query", "body"]),
        _set_field("methods", ["GET", "POST"]),
        _set_field("paths", ["/*"]),
        _set_field("paths", []),
        _set_field("placeholder_format", "shaped"),
        _swap_ciphertexts,
    ],
    ids=[
        "domain-added",
        "domain-replaced",
        "domain-widened",
        "surfaces-widened",
        "method-added",
        "path-widened",
        "paths-dropped",
        "placeholder-format",
        "ciphertexts-swapped",
    ],
)
def test_edited_metadata_fails_to_decrypt(
    home: Path, vault: Vault, edit: Callable[[dict[str, Any]], None]
) -> None:
    vault.set("TOKEN", SecretValue(SENTINEL), ["api.github.com"], methods=["GET"], paths=["/r/*"])
    vault.set("OTHER", SecretValue("other-value"), ["api.github.com"])
    edit_file(home, edit)
    for attempt in (lambda: vault.get("TOKEN"), vault.load_all, vault.snapshot):
        with pytest.raises(VaultCorrupt) as info:
            attempt()
        assert "secret TOKEN" in info.value.message or "secret OTHER" in info.value.message
        assert str(vault_file(home)) in info.value.message
        assert SENTINEL not in info.value.message


def test_renamed_secret_fails_to_decrypt(home: Path, vault: Vault) -> None:
    vault.set("TOKEN", SecretValue(SENTINEL), ["api.github.com"])
    edit_file(home, _rename)
    with pytest.raises(VaultCorrupt, match="EVIL"):
        vault.get("EVIL")


def test_edited_timestamps_still_decrypt(home: Path, vault: Vault) -> None:
    vault.set("TOKEN", SecretValue(SENTINEL), ["api.github.com"])
    edit_file(home, _set_field("updated", "2030-01-01T00:00:00Z"))
    assert vault.get("TOKEN").value.reveal() == SENTINEL
    assert vault.get("TOKEN").meta.updated == datetime(2030, 1, 1, tzinfo=UTC)


def _valid_doc(**top: object) -> bytes:
    doc: dict[str, Any] = {"format": "coatcheck-vault", "version": 1, "key_id": None}
    doc["secrets"] = {}
    doc.update(top)
    return json.dumps(doc).encode()


_RECORD = {
    "domains": ["a.example"],
    "surfaces": ["header"],
    "methods": [],
    "paths": [],
    "placeholder_format": "opaque",
    "created": "2025-01-01T00:00:00Z",
    "updated": "2025-01-01T00:00:00Z",
    "nonce": base64.b64encode(bytes(12)).decode(),
    "ciphertext": base64.b64encode(bytes(20)).decode(),
}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"garbage", "not JSON"),
        (b'{"format": "coatcheck-vault", "vers', "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[]", "not a coatcheck-vault file"),
        (_valid_doc(format="something-else"), "not a coatcheck-vault file"),
        (_valid_doc(version=2), "newer coatcheck"),
        (_valid_doc(version="1"), "no format version"),
        (_valid_doc(secrets=[]), "no 'secrets' object"),
        (_valid_doc(secrets={"1BAD": _RECORD}), "'1BAD'"),
        (_valid_doc(secrets={"T": {**_RECORD, "nonce": "%%%"}}), "nonce is not base64"),
        (_valid_doc(secrets={"T": {**_RECORD, "domains": []}}), "no domains"),
        (_valid_doc(secrets={"T": {**_RECORD, "domains": "a.example"}}), "list of strings"),
        (_valid_doc(secrets={"T": {**_RECORD, "surfaces": ["smoke"]}}), "unknown surface"),
        (_valid_doc(secrets={"T": {**_RECORD, "created": "2025-01-01"}}), "no time zone"),
        (_valid_doc(secrets={"T": {**_RECORD, "created": "yesterday"}}), "not an ISO 8601"),
        (_valid_doc(secrets={"T": "nope"}), "not an object"),
    ],
    ids=[
        "garbage",
        "truncated",
        "not-utf8",
        "json-list",
        "wrong-format",
        "newer-version",
        "version-not-int",
        "secrets-not-object",
        "bad-name",
        "bad-base64",
        "no-domains",
        "domains-not-list",
        "bad-surface",
        "naive-time",
        "bad-time",
        "record-not-object",
    ],
)
def test_corrupt_file_is_reported_and_left_alone(
    home: Path, vault: Vault, content: bytes, why: str
) -> None:
    home.mkdir(mode=0o700)
    vault_file(home).write_bytes(content)
    with pytest.raises(VaultCorrupt) as info:
        vault.list()
    message = info.value.message
    assert why in message
    assert str(vault_file(home)) in message
    assert "nothing was changed" in message
    for write in (
        lambda: vault.set("NEW", SecretValue(SENTINEL), ["a.example"]),
        lambda: vault.remove("T"),
    ):
        with pytest.raises(VaultCorrupt):
            write()
    assert vault_file(home).read_bytes() == content


# -- failed writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
def test_failed_write_leaves_the_previous_file(
    home: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    vault.set("TOKEN", SecretValue("old-value"), ["a.example"])
    before = vault_file(home).read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(VaultError) as info:
        vault.set("TOKEN", SecretValue(SENTINEL), ["a.example"])
    monkeypatch.undo()
    assert "previous vault is unchanged" in info.value.message
    assert "No space left on device" in info.value.message
    assert SENTINEL not in info.value.message
    assert vault_file(home).read_bytes() == before
    assert vault.get("TOKEN").value.reveal() == "old-value"
    assert sorted(p.name for p in home.iterdir()) == ["vault.json", "vault.lock"]


def test_failed_remove_leaves_the_previous_file(
    home: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.set("TOKEN", SecretValue("v-secret-value"), ["a.example"])
    before = vault_file(home).read_bytes()

    def boom(*args: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(VaultError):
        vault.remove("TOKEN")
    assert vault_file(home).read_bytes() == before


# -- refused input stores nothing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "domains", "options", "error"),
    [
        ("TOKEN", SENTINEL + "\r", ["a.example"], {}, InvalidValue),
        ("TOKEN", SENTINEL + "\n", ["a.example"], {}, InvalidValue),
        ("TOKEN", "a\r\nX-Evil: 1", ["a.example"], {}, InvalidValue),
        ("TOKEN", SENTINEL + "\x00", ["a.example"], {}, InvalidValue),
        ("TOKEN", "", ["a.example"], {}, InvalidValue),
        ("BAD-NAME", SENTINEL, ["a.example"], {}, InvalidName),
        ("TOKEN", SENTINEL, [], {}, InvalidDomain),
        ("TOKEN", SENTINEL, ["*"], {}, InvalidDomain),
        ("TOKEN", SENTINEL, ["https://a.example"], {}, InvalidDomain),
        ("TOKEN", SENTINEL, ["a.example"], {"surfaces": ["cookie"]}, UsageError),
        ("TOKEN", SENTINEL, ["a.example"], {"methods": ["G T"]}, UsageError),
        ("TOKEN", SENTINEL, ["a.example"], {"paths": ["v1"]}, UsageError),
        ("TOKEN", SENTINEL, ["a.example"], {"placeholder_format": "pretty"}, UsageError),
    ],
    ids=[
        "cr",
        "lf",
        "header-injection",
        "nul",
        "empty",
        "bad-name",
        "no-domain",
        "star-domain",
        "scheme-domain",
        "bad-surface",
        "bad-method",
        "bad-path",
        "bad-format",
    ],
)
def test_refused_input_stores_nothing(
    home: Path,
    vault: Vault,
    name: str,
    value: str,
    domains: list[str],
    options: dict[str, Any],
    error: type[CoatcheckError],
) -> None:
    vault.set("EXISTING", SecretValue("keep-me-secret-value"), ["a.example"])
    before = vault_file(home).read_bytes()
    with pytest.raises(error) as info:
        vault.set(name, SecretValue(value), domains, **options)
    assert SENTINEL not in str(info.value)
    assert vault_file(home).read_bytes() == before
    with pytest.raises(SecretNotFound):
        vault.get("TOKEN")


def test_refused_value_creates_no_file(home: Path, vault: Vault) -> None:
    with pytest.raises(InvalidValue):
        vault.set("TOKEN", SecretValue("a\nb"), ["a.example"])
    assert not vault_file(home).exists()


# -- keys --------------------------------------------------------------------------------------


def test_metadata_operations_need_no_key(home: Path, keystore: MemoryKeystore) -> None:
    Vault.open(home, keystore=keystore).set("A", SecretValue("a-secret-value"), ["a.example"])
    Vault.open(home, keystore=keystore).set("B", SecretValue("b-secret-value"), ["a.example"])
    no_key = RaisingKeystore()
    vault = Vault.open(home, keystore=no_key)
    assert [m.name for m in vault.list()] == ["A", "B"]
    vault.remove("A")
    assert vault.version() != MISSING
    assert no_key.calls == 0
    with pytest.raises(KeystoreUnavailable):
        vault.get("B")


def test_default_keystore_is_asked_only_when_a_key_is_needed(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.open(home)  # no key file, and conftest left only keyring's fail backend
    assert vault.list() == []
    with pytest.raises(KeystoreUnavailable, match="COATCHECK_VAULT_KEY_FILE"):
        vault.set("TOKEN", SecretValue("v-secret-value"), ["a.example"])
    assert not vault_file(home).exists()
    key_file = tmp_path / "key"
    monkeypatch.setenv("COATCHECK_VAULT_KEY_FILE", str(key_file))
    vault = Vault.open(home)
    vault.set("TOKEN", SecretValue("v-secret-value"), ["a.example"])
    assert key_file.exists()
    assert Vault.open(home).get("TOKEN").value.reveal() == "v-secret-value"


def test_a_different_key_is_refused_without_damage(home: Path) -> None:
    Vault.open(home, keystore=MemoryKeystore(generate_key())).set(
        "TOKEN", SecretValue(SENTINEL), ["a.example"]
    )
    before = vault_file(home).read_bytes()
    other = Vault.open(home, keystore=MemoryKeystore(generate_key()))
    for attempt in (
        lambda: other.get("TOKEN"),
        other.load_all,
        lambda: other.set("NEW", SecretValue("v-secret-value"), ["a.example"]),
    ):
        with pytest.raises(VaultError) as info:
            attempt()
        assert "different key" in info.value.message
        assert "COATCHECK_VAULT_KEY_FILE" in info.value.message
    assert vault_file(home).read_bytes() == before
    # Metadata still works; once every secret is removed, the new key may start afresh.
    assert [m.name for m in other.list()] == ["TOKEN"]
    other.remove("TOKEN")
    other.set("NEW", SecretValue("v-secret-value"), ["a.example"])
    assert other.get("NEW").value.reveal() == "v-secret-value"


# -- rotation ----------------------------------------------------------------------------------


def test_version_changes_on_every_write_and_only_then(home: Path, keystore: MemoryKeystore) -> None:
    cli = Vault.open(home, keystore=keystore)
    proxy = Vault.open(home, keystore=keystore)
    seen = {proxy.version()}
    cli.set("TOKEN", SecretValue("v1-secret-value"), ["a.example"])
    seen.add(proxy.version())
    v = proxy.version()
    proxy.list()
    proxy.get("TOKEN")
    proxy.load_all()
    assert proxy.version() == v
    cli.set("TOKEN", SecretValue("v2-secret-value"), ["a.example"])  # same size as v1
    seen.add(proxy.version())
    cli.remove("TOKEN")
    seen.add(proxy.version())
    assert len(seen) == 4


def test_rotation_is_seen_by_a_long_running_reader(home: Path, keystore: MemoryKeystore) -> None:
    cli = Vault.open(home, keystore=keystore)
    proxy = Vault.open(home, keystore=keystore)
    cli.set("TOKEN", SecretValue("old-secret-value"), ["a.example"])
    version, secrets = proxy.snapshot()
    assert version == proxy.version()
    assert secrets["TOKEN"].value.reveal() == "old-secret-value"
    cli.set("TOKEN", SecretValue("new-secret-value"), ["a.example"])
    assert proxy.version() != version
    version, secrets = proxy.snapshot()
    assert secrets["TOKEN"].value.reveal() == "new-secret-value"
    cli.remove("TOKEN")
    assert proxy.version() != version
    assert proxy.load_all() == {}


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_sets_from_threads_lose_nothing(home: Path) -> None:
    key = generate_key()
    workers, count = 8, 15
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            vault = Vault.open(home, keystore=MemoryKeystore(key))
            barrier.wait()
            for i in range(count):
                vault.set(f"W{worker}_S{i}", SecretValue(f"value-{worker}-{i}"), ["a.example"])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = Vault.open(home, keystore=MemoryKeystore(key)).load_all()
    expected = {f"W{w}_S{i}": f"value-{w}-{i}" for w in range(workers) for i in range(count)}
    assert {name: s.value.reveal() for name, s in loaded.items()} == expected


def test_concurrent_sets_from_processes_lose_nothing(home: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "vault.key"
    workers, count = 4, 10
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=concurrent_setter, args=(str(home), str(key_file), w, count))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * workers
    from vault.keystore import FileKeystore

    loaded = Vault.open(home, keystore=FileKeystore(key_file)).load_all()
    expected = {f"W{w}_S{i}": f"value-{w}-{i}" for w in range(workers) for i in range(count)}
    shared = loaded.pop("SHARED").value.reveal()
    assert {name: s.value.reveal() for name, s in loaded.items()} == expected
    assert shared in {f"shared-{w}-{count - 1}" for w in range(workers)}
    assert sorted(p.name for p in home.iterdir()) == ["vault.json", "vault.lock"]


# -- nothing leaks through logs or output -----------------------------------------------------


def test_no_value_in_logs_or_output(
    home: Path,
    vault: Vault,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with caplog.at_level(logging.DEBUG):
        meta = vault.set("TOKEN", SecretValue(SENTINEL), ["a.example"])
        secret = vault.get("TOKEN")
        logging.getLogger("test").info("loaded %s %r %s", secret, vault.load_all(), meta)
        vault.list()
        vault.remove("TOKEN")
    out = capsys.readouterr()
    assert SENTINEL not in caplog.text + out.out + out.err
    assert "TOKEN" in caplog.text


def test_shaped_format_refuses_a_value_too_short_to_shape(vault: Vault) -> None:
    with pytest.raises(UsageError, match="opaque"):
        vault.set("TOKEN", SecretValue("ghp_12345678"), ["a.example"], placeholder_format="shaped")
    assert vault.list() == []
