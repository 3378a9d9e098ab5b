"""The server name a TLS ClientHello asks for, read from the first bytes of a stream. Pure.

An opaque tunnel (:mod:`proxy.opaque`) is spliced without terminating TLS, so the one thing the
proxy can still check is the ClientHello's SNI: it must name the CONNECT target. The hello may
come in several TLS records (a large key share); it is gathered up to :data:`HELLO_LIMIT`.
Anything else (no TLS record, another handshake message, a malformed extension block, two
``server_name`` extensions or two host names in one) is :data:`NOT_TLS`: the tunnel is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

HELLO_LIMIT = 64 * 1024
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_SERVER_NAME = 0x0000
_HOST_NAME = 0x00


@dataclass(frozen=True, slots=True)
class Hello:
    """What the first bytes say: ``complete`` with ``sni`` (None when the hello names no server),
    not yet complete (read more), or ``not_tls`` (refuse)."""

    complete: bool
    sni: str | None = None
    not_tls: bool = False


MORE = Hello(complete=False)
NOT_TLS = Hello(complete=False, not_tls=True)


class _Bad(Exception):
    pass


def read_hello(data: bytes) -> Hello:
    """Parse the ClientHello at the start of ``data`` (a client's first bytes on a tunnel)."""
    handshake, pos = bytearray(), 0
    while True:
        if len(data) - pos < 5:
            return _need_more(data, pos)
        if data[pos] != _HANDSHAKE or data[pos + 1] != 0x03:
            return NOT_TLS
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length == 0 or length > 16384 + 256:
            return NOT_TLS
        if len(data) - pos - 5 < length:
            return _need_more(data, pos)
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != _CLIENT_HELLO:
                return NOT_TLS
            size = int.from_bytes(handshake[1:4], "big")
            if size + 4 > HELLO_LIMIT:
                return NOT_TLS
            if len(handshake) >= size + 4:
                try:
                    return Hello(complete=True, sni=_sni(bytes(handshake[4 : 4 + size])))
                except (_Bad, IndexError, UnicodeDecodeError):
                    return NOT_TLS


def _need_more(data: bytes, pos: int) -> Hello:
    if len(data) >= HELLO_LIMIT:
        return NOT_TLS
    head = data[pos : pos + 2]
    if head[:1] not in (b"", bytes([_HANDSHAKE])) or head[1:2] not in (b"", b"\x03"):
        return NOT_TLS
    return MORE


def _take(body: bytes, pos: int, size: int) -> tuple[bytes, int]:
    end = pos + size
    if end > len(body):
        raise _Bad
    return body[pos:end], end


def _sni(body: bytes) -> str | None:
    pos = 2 + 32  # client version, random
    _, pos = _take(body, pos + 1, body[pos])  # session id
    _, pos = _take(body, pos + 2, int.from_bytes(body[pos : pos + 2], "big"))  # cipher suites
    _, pos = _take(body, pos + 1, body[pos])  # compression methods
    if pos == len(body):
        return None  # no extensions at all
    extensions, end = _take(body, pos + 2, int.from_bytes(body[pos : pos + 2], "big"))
    if end != len(body):
        raise _Bad
    names: list[str] = []
    seen_sni, pos = False, 0
    while pos < len(extensions):
        kind = int.from_bytes(extensions[pos : pos + 2], "big")
        data, pos = _take(extensions, pos + 4, int.from_bytes(extensions[pos + 2 : pos + 4], "big"))
        if kind == _SERVER_NAME:
            if seen_sni:
                raise _Bad
            seen_sni = True
            names.extend(_host_names(data))
    if len(names) > 1:
        raise _Bad
    return names[0] if names else None


def _host_names(data: bytes) -> list[str]:
    entries, end = _take(data, 2, int.from_bytes(data[0:2], "big"))
    if end != len(data):
        raise _Bad
    names, pos = [], 0
    while pos < len(entries):
        kind = entries[pos]
        name, pos = _take(entries, pos + 3, int.from_bytes(entries[pos + 1 : pos + 3], "big"))
        if kind == _HOST_NAME:
            if not name or not name.isascii():
                raise _Bad
            names.append(name.decode("ascii"))
    return names
