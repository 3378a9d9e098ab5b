from __future__ import annotations

import base64
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.chainer
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest

from core.errors import KeystoreUnavailable, VaultCorrupt
from tests.vault.helpers import FakeBackend
from vault.crypto import KEY_BYTES
from vault.keystore import (
    KEY_FILE_ENV,
    KEYRING_SERVICE,
    KEYRING_USERNAME,
    FileKeystore,
    KeyringKeystore,
    Keystore,
    MemoryKeystore,
    default_keystore,
    keyring_usable,
)


class InMemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend class (so ``keyring.set_keyring`` takes it) kept in memory."""

    priority = -1  # type: ignore[assignment]  # never chosen by keyring's own discovery

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- the same contract for every keystore ---------------------------------------------------


def memory_opener(tmp_path: Path) -> Callable[[], Keystore]:
    store = MemoryKeystore()
    return lambda: store


def file_opener(tmp_path: Path) -> Callable[[], Keystore]:
    return lambda: FileKeystore(tmp_path / "keys" / "vault.key")


def fake_keyring_opener(tmp_path: Path) -> Callable[[], Keystore]:
    backend = FakeBackend()
    return lambda: KeyringKeystore(backend=backend)


def global_keyring_opener(tmp_path: Path) -> Callable[[], Keystore]:
    keyring.set_keyring(InMemoryKeyring())  # conftest restores the previous one
    return lambda: default_keystore({})


@pytest.fixture(
    params=[memory_opener, file_opener, fake_keyring_opener, global_keyring_opener],
    ids=["memory", "file", "keyring-backend", "keyring-via-default_keystore"],
)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Keystore]:
    return request.param(tmp_path)  # type: ignore[no-any-return]


def test_contract_first_use_creates_a_256_bit_key(opener: Callable[[], Keystore]) -> None:
    key = opener().load_key()
    assert isinstance(key, bytes)
    assert len(key) == KEY_BYTES


def test_contract_same_key_every_time(opener: Callable[[], Keystore]) -> None:
    first = opener().load_key()
    store = opener()
    assert store.load_key() == first
    assert store.load_key() == first


def test_memory_keystores_are_independent_unless_given_a_key() -> None:
    assert MemoryKeystore().load_key() != MemoryKeystore().load_key()
    key = bytes(KEY_BYTES)
    assert MemoryKeystore(key).load_key() == key


# -- FileKeystore ---------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077], ids=["umask-000", "umask-022", "umask-077"])
def test_key_file_is_created_0600_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "keys" / "vault.key"
    with umask(mask):
        key = FileKeystore(path).load_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert base64.b64decode(path.read_bytes().strip()) == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["vault.key"]  # no temp left


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620, 0o606], ids=oct)
def test_loose_key_file_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "vault.key"
    FileKeystore(path).load_key()
    os.chmod(path, mode)
    before = path.read_bytes()
    with pytest.raises(KeystoreUnavailable) as info:
        FileKeystore(path).load_key()
    assert f"chmod 600 {path}" in info.value.message
    assert f"{mode:04o}" in info.value.message
    assert path.read_bytes() == before
    assert before.strip().decode() not in info.value.message


@pytest.mark.parametrize(
    "content",
    [b"", b"not base64!!\n", base64.b64encode(b"short") + b"\n", base64.b64encode(bytes(33))],
    ids=["empty", "not-base64", "too-short", "too-long"],
)
def test_damaged_key_file_is_corrupt_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vault.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(VaultCorrupt) as info:
        FileKeystore(path).load_key()
    assert str(path) in info.value.message
    assert path.read_bytes() == content


def test_key_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.mkdir(mode=0o700)
    with pytest.raises(KeystoreUnavailable, match="not a regular file"):
        FileKeystore(path).load_key()


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    barrier = threading.Barrier(16)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            keys.append(FileKeystore(path).load_key())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(keys)) == 1
    assert FileKeystore(path).load_key() == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == ["vault.key"]


def test_file_system_without_hard_links_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    path = tmp_path / "vault.key"
    key = FileKeystore(path).load_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FileKeystore(path).load_key() == key
    assert [p.name for p in tmp_path.iterdir()] == ["vault.key"]


def test_unwritable_key_directory_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def deny(path: object, flags: int, *args: object) -> int:
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(KeystoreUnavailable, match="Permission denied"):
        FileKeystore(tmp_path / "vault.key").load_key()


# -- KeyringKeystore ------------------------------------------------------------------------


def test_keyring_entry_is_base64_under_coatcheck_service() -> None:
    backend = FakeBackend()
    key = KeyringKeystore(backend=backend).load_key()
    assert list(backend.store) == [(KEYRING_SERVICE, KEYRING_USERNAME)]
    assert (KEYRING_SERVICE, KEYRING_USERNAME) == ("coatcheck", "vault-master-key")
    assert base64.b64decode(backend.store[(KEYRING_SERVICE, KEYRING_USERNAME)]) == key


def test_keyring_entry_that_is_not_a_key_is_corrupt() -> None:
    backend = FakeBackend()
    backend.store[(KEYRING_SERVICE, KEYRING_USERNAME)] = "hunter2"
    with pytest.raises(VaultCorrupt) as info:
        KeyringKeystore(backend=backend).load_key()
    assert "coatcheck/vault-master-key" in info.value.message
    assert "hunter2" not in info.value.message
    assert backend.store[(KEYRING_SERVICE, KEYRING_USERNAME)] == "hunter2"


class RaisingBackend(FakeBackend):
    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc

    def get_password(self, service: str, username: str) -> str | None:
        raise self.exc


class ForgetfulBackend(FakeBackend):
    def set_password(self, service: str, username: str, password: str) -> None:
        pass


@pytest.mark.parametrize(
    "exc",
    [
        keyring.errors.KeyringLocked("locked"),
        keyring.errors.NoKeyringError("none"),
        keyring.errors.InitError("init"),
        RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown"),
    ],
    ids=["locked", "no-keyring", "init-error", "backend-own-error"],
)
def test_keyring_errors_become_keystore_unavailable(exc: Exception) -> None:
    with pytest.raises(KeystoreUnavailable) as info:
        KeyringKeystore(backend=RaisingBackend(exc)).load_key()
    assert type(exc).__name__ in info.value.message
    assert "keyrings.alt" in info.value.message
    assert KEY_FILE_ENV in info.value.message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_keyring_that_forgets_the_key_is_unavailable() -> None:
    with pytest.raises(KeystoreUnavailable, match="did not keep"):
        KeyringKeystore(backend=ForgetfulBackend()).load_key()


# -- default_keystore -----------------------------------------------------------------------


def assert_names_both_fixes(message: str) -> None:
    assert "keyring" in message
    assert "gnome-keyring" in message
    assert "keyrings.alt" in message
    assert "COATCHECK_VAULT_KEY_FILE=/path/to/keyfile" in message
    assert "0600" in message


def test_key_file_env_wins(tmp_path: Path) -> None:
    keyring.set_keyring(InMemoryKeyring())
    store = default_keystore({KEY_FILE_ENV: str(tmp_path / "k")})
    assert isinstance(store, FileKeystore)
    assert store.path == tmp_path / "k"


def test_key_file_env_is_read_from_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "k"))
    store = default_keystore()
    assert isinstance(store, FileKeystore)
    store.load_key()
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_key_file_env_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    store = default_keystore({KEY_FILE_ENV: "rel/vault.key"})
    assert isinstance(store, FileKeystore)
    assert store.path == tmp_path / "rel" / "vault.key"


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring, keyring.backends.null.Keyring],
    ids=["fail-backend", "null-backend"],
)
def test_no_usable_keyring_and_no_key_file_names_both_fixes(backend: type) -> None:
    keyring.set_keyring(backend())
    with pytest.raises(KeystoreUnavailable) as info:
        default_keystore({})
    assert_names_both_fixes(info.value.message)
    assert backend.__name__ in info.value.message


def test_chainer_without_backends_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    chainer = keyring.backends.chainer.ChainerBackend
    monkeypatch.setattr(chainer, "backends", [])
    keyring.set_keyring(chainer())
    with pytest.raises(KeystoreUnavailable) as info:
        default_keystore({})
    assert_names_both_fixes(info.value.message)


def test_chainer_with_a_real_backend_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    chainer = keyring.backends.chainer.ChainerBackend
    inner = InMemoryKeyring()
    monkeypatch.setattr(chainer, "backends", [inner])
    assert keyring_usable(chainer())
    keyring.set_keyring(chainer())
    key = default_keystore({}).load_key()
    assert base64.b64decode(inner.store[(KEYRING_SERVICE, KEYRING_USERNAME)]) == key


def test_working_keyring_is_the_default() -> None:
    backend = InMemoryKeyring()
    keyring.set_keyring(backend)
    store = default_keystore({})
    assert isinstance(store, KeyringKeystore)
    assert store.load_key() == default_keystore({}).load_key()
    assert (KEYRING_SERVICE, KEYRING_USERNAME) in backend.store
