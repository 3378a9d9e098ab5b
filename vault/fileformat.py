"""The vault file's JSON format: parse bytes into frozen records, and back. No I/O.

    {
      "format": "coatcheck-vault",
      "version": 1,
      "key_id": "3f9c...",              # fingerprint of the key the secrets were sealed with
      "secrets": {
        "GITHUB_TOKEN": {
          "domains": ["api.github.com"], "surfaces": ["header", "basic"],
          "methods": [], "paths": [], "placeholder_format": "opaque",
          "created": "2025-01-01T00:00:00.000000Z", "updated": "...",
          "rotate_after": 2592000,        # optional: seconds (vault set --rotate-after 30d)
          "nonce": "<base64>", "ciphertext": "<base64>"
        }
      }
    }

Metadata is plain text so ``vault list`` works without the key; the ciphertext is bound to it
(all but the times and ``rotate_after``, a reminder that says nothing about where the value may
go). A secret without ``rotate_after`` (files written before it existed) has no rotation policy.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from core.errors import CoatcheckError, VaultCorrupt
from vault.crypto import Sealed
from vault.rotation import validate_period
from vault.secret import SecretMeta
from vault.validate import (
    validate_methods,
    validate_name,
    validate_paths,
    validate_placeholder_format,
    validate_surfaces,
)

FORMAT_NAME: Final = "coatcheck-vault"
FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Record:
    meta: SecretMeta
    sealed: Sealed


@dataclass(frozen=True, slots=True)
class Document:
    key_id: str | None = None
    records: Mapping[str, Record] = field(default_factory=dict)


class _Bad(Exception):
    pass


def parse_document(data: bytes, *, where: str) -> Document:
    """Parse the vault file's bytes; raise VaultCorrupt naming ``where`` if they are bad."""
    try:
        return _parse(data)
    except _Bad as exc:
        raise VaultCorrupt(
            f"the vault file {where} can't be read ({exc}); nothing was changed. Restore it "
            "from a backup, or move it aside to start with an empty vault"
        ) from None


def dump_document(doc: Document) -> bytes:
    secrets = {name: _dump_record(doc.records[name]) for name in sorted(doc.records)}
    top = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "key_id": doc.key_id,
        "secrets": secrets,
    }
    return (json.dumps(top, indent=2) + "\n").encode("utf-8")


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse(data: bytes) -> Document:
    try:
        top = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Bad(f"not JSON: {exc}") from None
    if not isinstance(top, dict) or top.get("format") != FORMAT_NAME:
        raise _Bad(f"not a {FORMAT_NAME} file")
    version = top.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Bad("no format version")
    if version > FORMAT_VERSION:
        raise _Bad(f"format version {version} was written by a newer coatcheck; upgrade it")
    if version != FORMAT_VERSION:
        raise _Bad(f"unknown format version {version}")
    key_id = top.get("key_id")
    if key_id is not None and not isinstance(key_id, str):
        raise _Bad("key_id is not a string")
    secrets = top.get("secrets")
    if not isinstance(secrets, dict):
        raise _Bad("no 'secrets' object")
    records = {name: _parse_record(name, raw) for name, raw in secrets.items()}
    return Document(key_id=key_id, records=records)


def _parse_record(name: str, raw: Any) -> Record:
    try:
        validate_name(name)
        if not isinstance(raw, dict):
            raise _Bad("not an object")
        domains = _strings(raw, "domains")
        if not domains or not all(domains):
            raise _Bad("no domains")
        meta = SecretMeta(
            name=name,
            domains=domains,
            created=_time(raw, "created"),
            updated=_time(raw, "updated"),
            surfaces=validate_surfaces(_strings(raw, "surfaces")),
            methods=validate_methods(_strings(raw, "methods")),
            paths=validate_paths(_strings(raw, "paths")),
            placeholder_format=validate_placeholder_format(_string(raw, "placeholder_format")),
            rotate_after=_period(raw),
        )
        sealed = Sealed(nonce=_b64(raw, "nonce"), ciphertext=_b64(raw, "ciphertext"))
    except (_Bad, CoatcheckError) as exc:
        raise _Bad(f"secret {name!r}: {exc}") from None
    return Record(meta, sealed)


def _dump_record(record: Record) -> dict[str, Any]:
    meta = record.meta
    policy = {} if meta.rotate_after is None else {"rotate_after": meta.rotate_after}
    return {
        "domains": list(meta.domains),
        "surfaces": list(meta.surfaces),
        "methods": list(meta.methods),
        "paths": list(meta.paths),
        "placeholder_format": meta.placeholder_format,
        "created": format_time(meta.created),
        "updated": format_time(meta.updated),
        **policy,
        "nonce": base64.b64encode(record.sealed.nonce).decode("ascii"),
        "ciphertext": base64.b64encode(record.sealed.ciphertext).decode("ascii"),
    }


def _period(raw: dict[str, Any]) -> int | None:
    """``rotate_after``: absent or null is no rotation policy."""
    value = raw.get("rotate_after")
    return None if value is None else validate_period(value)


def _string(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise _Bad(f"{key} is not a string")
    return value


def _strings(raw: dict[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _Bad(f"{key} is not a list of strings")
    return tuple(value)


def _time(raw: dict[str, Any], key: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_string(raw, key))
    except ValueError:
        raise _Bad(f"{key} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Bad(f"{key} has no time zone")
    return moment.astimezone(UTC)


def _b64(raw: dict[str, Any], key: str) -> bytes:
    try:
        return base64.b64decode(_string(raw, key), validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"{key} is not base64") from None
