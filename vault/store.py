"""The vault on disk: ``HOME/vault.json``, written atomically under a lock.

Reads never lock: every write replaces the whole file with ``os.replace``, so a reader sees
the old file or the new one, never a mix. Writes hold ``fcntl.flock`` on ``HOME/vault.lock``
for the whole read-modify-write, so concurrent ``set`` calls never lose each other's update.
A failed write leaves the previous file as it was.

The key is needed only to seal or open values: ``list`` and ``remove`` work without one.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from core.errors import SecretNotFound, VaultCorrupt, VaultError
from core.home import ensure_private_dir
from vault import crypto
from vault.fileformat import Document, Record, dump_document, parse_document
from vault.keystore import Keystore, default_keystore
from vault.rotation import validate_period
from vault.secret import DEFAULT_SURFACES, Secret, SecretMeta, SecretValue
from vault.validate import (
    validate_domains,
    validate_methods,
    validate_name,
    validate_paths,
    validate_placeholder_format,
    validate_surfaces,
    validate_value,
)

VAULT_FILE: Final = "vault.json"
LOCK_FILE: Final = "vault.lock"

Version = tuple[int, int, int]
MISSING: Final[Version] = (0, 0, 0)
KEEP: Final[Literal["keep"]] = "keep"  # Vault.set(rotate_after=KEEP): keep its policy


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Read:
    version: Version
    doc: Document


class Vault:
    """Secrets for one coatcheck home. Build it with ``Vault.open``."""

    def __init__(
        self, home: Path, *, keystore: Keystore | None, clock: Callable[[], datetime]
    ) -> None:
        self.home = home
        self.path = home / VAULT_FILE
        self._lock_path = home / LOCK_FILE
        self._keystore = keystore
        self._clock = clock

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        keystore: Keystore | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> Vault:
        """A vault in ``home``. Without ``keystore``, ``default_keystore()`` is asked the
        first time a key is needed, so metadata-only operations work without one."""
        return cls(home, keystore=keystore, clock=clock)

    # -- writes ------------------------------------------------------------------------

    def set(
        self,
        name: str,
        value: SecretValue,
        domains: Iterable[str],
        *,
        surfaces: Iterable[str] = DEFAULT_SURFACES,
        methods: Iterable[str] = (),
        paths: Iterable[str] = (),
        placeholder_format: str = "opaque",
        rotate_after: int | None | Literal["keep"] = KEEP,
    ) -> SecretMeta:
        """Store ``value`` under ``name``, creating or replacing it. Returns its metadata.
        ``rotate_after``: seconds, None for no rotation policy, or KEEP the one it had."""
        validate_name(name)
        validate_value(value, shaped=placeholder_format == "shaped")
        canonical_domains = validate_domains(domains)
        canonical_surfaces = validate_surfaces(surfaces)
        canonical_methods = validate_methods(methods)
        canonical_paths = validate_paths(paths)
        fmt = validate_placeholder_format(placeholder_format)
        keep = isinstance(rotate_after, str)
        period = None if isinstance(rotate_after, str) else rotate_after
        if period is not None:
            validate_period(period)
        with self._locked():
            doc = self._read().doc
            key = self._key()
            kid = crypto.key_id(key)
            if doc.records and doc.key_id not in (None, kid):
                raise self._wrong_key()
            now = self._clock().astimezone(UTC)
            old = doc.records.get(name)
            meta = SecretMeta(
                name=name,
                domains=canonical_domains,
                created=old.meta.created if old else now,
                updated=now,
                surfaces=canonical_surfaces,
                methods=canonical_methods,
                paths=canonical_paths,
                placeholder_format=fmt,
                rotate_after=(old.meta.rotate_after if old else None) if keep else period,
            )
            records = {**doc.records, name: Record(meta, crypto.encrypt(key, meta, value))}
            self._write(Document(key_id=kid, records=records))
        return meta

    def remove(self, name: str) -> None:
        """Remove the secret ``name``; raise SecretNotFound if there is none."""
        validate_name(name)
        with self._locked():
            doc = self._read().doc
            if name not in doc.records:
                raise self._not_found(name)
            records = {n: r for n, r in doc.records.items() if n != name}
            self._write(Document(key_id=doc.key_id if records else None, records=records))

    # -- reads -------------------------------------------------------------------------

    def list(self) -> builtins.list[SecretMeta]:
        """Metadata of every secret, sorted by name. Needs no key."""
        records = self._read().doc.records
        return [records[name].meta for name in sorted(records)]

    def get(self, name: str) -> Secret:
        """The secret ``name`` with its value; raise SecretNotFound if there is none."""
        doc = self._read().doc
        record = doc.records.get(name)
        if record is None:
            raise self._not_found(name)
        return self._open_records(doc, [record])[name]

    def load_all(self) -> dict[str, Secret]:
        """Every secret with its value, by name."""
        return self.snapshot()[1]

    def snapshot(self) -> tuple[Version, dict[str, Secret]]:
        """Every secret and the ``version()`` of the very file they were read from."""
        read = self._read()
        return read.version, self._open_records(read.doc, list(read.doc.records.values()))

    def version(self) -> Version:
        """The file's identity (mtime_ns, size, inode); it changes on every write."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return MISSING
        except OSError as exc:
            raise VaultError(f"can't read the vault file {self.path}: {exc.strerror}") from None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    # -- internals ---------------------------------------------------------------------

    def _key(self) -> bytes:
        if self._keystore is None:
            self._keystore = default_keystore()
        return self._keystore.load_key()

    def _open_records(self, doc: Document, records: builtins.list[Record]) -> dict[str, Secret]:
        if not records:
            return {}
        key = self._key()
        if doc.key_id is not None and doc.key_id != crypto.key_id(key):
            raise self._wrong_key()
        opened: dict[str, Secret] = {}
        for record in records:
            try:
                value = crypto.decrypt(key, record.meta, record.sealed)
            except VaultCorrupt as exc:
                raise VaultCorrupt(f"in {self.path}: {exc.message}") from None
            opened[record.meta.name] = Secret(record.meta, value)
        return opened

    def _read(self) -> _Read:
        try:
            with open(self.path, "rb") as f:
                info = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return _Read(MISSING, Document())
        except OSError as exc:
            raise VaultError(f"can't read the vault file {self.path}: {exc.strerror}") from None
        version = (info.st_mtime_ns, info.st_size, info.st_ino)
        return _Read(version, parse_document(data, where=str(self.path)))

    def _write(self, doc: Document) -> None:
        data = dump_document(doc)
        tmp = self.home / f".{VAULT_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise VaultError(
                f"can't write the vault file {self.path}: {exc.strerror or exc}; "
                "the previous vault is unchanged"
            ) from None
        _fsync_dir(self.home)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            ensure_private_dir(self.home)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise VaultError(
                f"can't lock the vault in {self.home}: {exc.strerror}; check that the "
                "directory is yours and writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _not_found(self, name: str) -> SecretNotFound:
        return SecretNotFound(
            f"no secret named {name} in the vault; see the names with `coatcheck vault list`"
        )

    def _wrong_key(self) -> VaultError:
        return VaultError(
            f"the vault {self.path} was sealed with a different key than the one the keystore "
            "gave; nothing was changed. Did COATCHECK_VAULT_KEY_FILE or the OS keyring change? "
            "Restore the original key, or remove the secrets with `coatcheck vault rm NAME` "
            "and set them again"
        )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
