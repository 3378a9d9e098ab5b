"""Where the vault's 256-bit master key lives. The only module that imports ``keyring``.

Every keystore creates a random key on first use and returns the same key after that.
keyring's exceptions are translated to ``KeystoreUnavailable`` here and never escape.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from core.errors import KeystoreUnavailable, VaultCorrupt
from vault.crypto import KEY_BYTES, generate_key

if TYPE_CHECKING:
    import keyring.backend

KEY_FILE_ENV: Final = "COATCHECK_VAULT_KEY_FILE"
KEYRING_SERVICE: Final = "coatcheck"
KEYRING_USERNAME: Final = "vault-master-key"

_NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})

FIXES: Final = (
    "Fix it in one of two ways: (1) install or unlock an OS keyring backend (e.g. the Secret "
    "Service with gnome-keyring or KWallet, macOS Keychain, or `pip install keyrings.alt`); "
    f"or (2) set {KEY_FILE_ENV}=/path/to/keyfile (created with mode 0600 on first use)"
)


class KeyringBackendLike(Protocol):
    """The part of ``keyring.backend.KeyringBackend`` this module uses."""

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...


class Keystore(Protocol):
    def load_key(self) -> bytes:
        """Return the vault key, creating and storing a new random one on first use."""
        ...


class MemoryKeystore:
    """A keystore that lives and dies with the process (for tests)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key

    def load_key(self) -> bytes:
        if self._key is None:
            self._key = generate_key()
        return self._key


class FileKeystore:
    """The key as base64 text in a file only its owner may read (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_key(self) -> bytes:
        try:
            return self._read()
        except FileNotFoundError:
            pass
        try:
            return self._create()
        except FileExistsError:  # another process created it first; use theirs
            return self._read()

    def _read(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise KeystoreUnavailable(
                f"can't read the vault key file {self.path}: {exc.strerror}"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise KeystoreUnavailable(f"the vault key file {self.path} is not a regular file")
            if info.st_mode & 0o077:
                raise KeystoreUnavailable(
                    f"the vault key file {self.path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); "
                    f"run `chmod 600 {self.path}` and try again"
                )
            text = os.read(fd, 4096)
        except OSError as exc:
            raise KeystoreUnavailable(
                f"can't read the vault key file {self.path}: {exc.strerror}"
            ) from None
        finally:
            os.close(fd)
        return _decode_key(text, where=f"the key file {self.path}")

    def _create(self) -> bytes:
        """Write a new key to a private temp file, then link it into place.

        ``os.link`` fails if the key file exists, so of two processes creating it at once
        exactly one wins, and nobody ever reads a half-written key. On a file system
        without hard links the key file is created in place, still with O_EXCL.
        """
        key = generate_key()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_new(tmp, key)
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                _write_new(self.path, key)
        except FileExistsError:
            raise
        except OSError as exc:
            raise KeystoreUnavailable(
                f"can't create the vault key file {self.path}: {exc.strerror or exc}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return key


def _write_new(path: Path, key: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        os.write(fd, base64.b64encode(key) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyringKeystore:
    """The key as base64 text in the OS keyring (service ``coatcheck``)."""

    def __init__(
        self,
        *,
        backend: KeyringBackendLike | None = None,
        service: str = KEYRING_SERVICE,
        username: str = KEYRING_USERNAME,
    ) -> None:
        self._backend = backend
        self.service = service
        self.username = username

    def load_key(self) -> bytes:
        where = f"the OS keyring entry {self.service}/{self.username}"
        try:
            import keyring  # imported when used: it costs ~0.15 s at every CLI start

            backend = self._backend if self._backend is not None else keyring.get_keyring()
            stored = backend.get_password(self.service, self.username)
            if stored is None:
                backend.set_password(
                    self.service, self.username, base64.b64encode(generate_key()).decode()
                )
                stored = backend.get_password(self.service, self.username)  # read back
        except Exception as exc:  # KeyringError, or a backend's own (D-Bus, Keychain ...)
            raise _unavailable(f"the OS keyring failed ({type(exc).__name__})") from None
        if stored is None:
            raise _unavailable("the OS keyring did not keep the key it was given")
        return _decode_key(stored.encode("ascii", "replace"), where=where)


def default_keystore(environ: Mapping[str, str] | None = None) -> Keystore:
    """The key file named by COATCHECK_VAULT_KEY_FILE, else a working OS keyring.

    Raises KeystoreUnavailable, naming both fixes, when there is neither.
    """
    env = os.environ if environ is None else environ
    key_file = env.get(KEY_FILE_ENV)
    if key_file:
        return FileKeystore(Path(key_file).expanduser().absolute())
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception as exc:  # keyring's backend discovery can raise anything
        raise _unavailable(f"the OS keyring failed to load ({type(exc).__name__})") from None
    if not keyring_usable(backend):
        raise _unavailable(f"no usable OS keyring backend (found {type(backend).__name__})")
    return KeyringKeystore(backend=backend)


def keyring_usable(backend: keyring.backend.KeyringBackend) -> bool:
    """False for keyring's placeholder backends that can't store anything."""
    import keyring.backends.chainer
    import keyring.backends.fail
    import keyring.backends.null

    if isinstance(backend, keyring.backends.fail.Keyring | keyring.backends.null.Keyring):
        return False
    if isinstance(backend, keyring.backends.chainer.ChainerBackend):
        return any(keyring_usable(b) for b in backend.backends)
    return True


def _unavailable(reason: str) -> KeystoreUnavailable:
    return KeystoreUnavailable(f"no keystore for the vault key: {reason}. {FIXES}")


def _decode_key(text: bytes, *, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise VaultCorrupt(
            f"{where} does not hold a valid vault key (expected {KEY_BYTES} bytes as base64). "
            "Restore it from a backup; if no secret was ever stored with it, delete it and "
            "coatcheck will create a new one"
        )
    return key
