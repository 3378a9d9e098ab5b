"""Name lookups inside a sandbox: every name gets a loopback address that leads back to it.

A sandbox has no network, so nothing it looks up can be answered from outside, and nothing is
ever asked outside. Instead the sandbox's init answers DNS itself: each name a job looks up gets
an address of its own from a private loopback pool (``127.100.0.0/16``), stable for the run,
and the init maps a connection to that address back to the name, which it hands to the proxy
(``CONNECT name:443``). Clients that ignore ``HTTPS_PROXY`` (Node's ``fetch``, urllib3's
``PoolManager``, Go and Java programs) then go through the proxy and its rules unchanged.

- ``A`` for a host name: its pool address (``localhost`` and ``*.localhost``: 127.0.0.1);
  ``AAAA`` and every other type: an empty NOERROR answer (IPv6 has one loopback address only).
- A name that is not a host name (bytes outside ``[a-z0-9_-]``, an empty or overlong label):
  NXDOMAIN, so nothing but a host name can reach the CONNECT line.
- When the pool is full (``MAX_NAMES``), new names get SERVFAIL: an address is never reused,
  since a reused address could carry one name's connection as another's.
- A malformed query gets FORMERR when its header can be read, and is dropped when it can't (or
  when it is a response).

Pure and standard-library only: the sandbox image carries it (in /opt/coatcheck/sandbox).
"""

from __future__ import annotations

import struct
import threading

DNS_ADDRESS = "127.0.0.53"  # where the init answers (UDP and TCP port 53); never 127.0.0.1
DNS_OPTIONS = ("ndots:0", "attempts:2", "timeout:2")  # resolv.conf options for the sandbox
POOL = "127.100."  # the /16 names are mapped into
MAX_NAMES = 65_000  # 256 x 254 addresses (no .0 or .255 in the last byte) hold 65,024
TTL = 300

A, AAAA, CLASS_IN = 1, 28, 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
HEADER = struct.Struct("!HHHHHH")
ANSWER = struct.Struct("!HHHIH")  # name pointer, type, class, TTL, length
MAX_WIRE_NAME = 255
LABEL_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


class NameMap:
    """Host names and their pool addresses, both ways; safe across threads."""

    def __init__(self, *, limit: int = MAX_NAMES) -> None:
        self._limit = min(limit, MAX_NAMES)
        self._lock = threading.Lock()
        self._address: dict[str, str] = {}
        self._name: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._address)

    def address_of(self, name: str) -> str | None:
        """``name``'s address (a new one the first time), or None when the pool is full."""
        if name == "localhost" or name.endswith(".localhost"):
            return "127.0.0.1"
        with self._lock:
            address = self._address.get(name)
            if address is None:
                n = len(self._address)
                if n >= self._limit:
                    return None
                address = f"{POOL}{n // 254}.{n % 254 + 1}"
                self._address[name] = address
                self._name[address] = name
            return address

    def name_of(self, address: str) -> str | None:
        """The name a pool address was given to, or None."""
        with self._lock:
            return self._name.get(address)


def _header(qid: int, flags: int, rcode: int, qd: int = 0, an: int = 0) -> bytes:
    opcode_rd = flags & 0x7900  # the query's opcode and RD bit, echoed
    return HEADER.pack(qid, 0x8000 | opcode_rd | 0x0400 | 0x0080 | rcode, qd, an, 0, 0)


def _question(packet: bytes) -> tuple[bytes | None, int] | None:
    """The question's name as text (None: not a host name) and the offset after it; None when
    it is malformed (truncated, a compression pointer, a label or name too long)."""
    labels: list[bytes] = []
    at, host = 12, True
    while True:
        if at >= len(packet):
            return None
        size = packet[at]
        if size == 0:
            at += 1
            break
        if size > 63 or at + 1 + size > len(packet):  # 0xC0 pointers and 0x40 types too
            return None
        label = packet[at + 1 : at + 1 + size]
        host = host and LABEL_BYTES.issuperset(label.lower())
        labels.append(label.lower())
        at += 1 + size
        if at - 12 > MAX_WIRE_NAME:
            return None
    if at + 4 > len(packet):
        return None
    return (b".".join(labels) if host and labels else None), at


def answer(packet: bytes, names: NameMap) -> bytes | None:
    """The reply to one DNS query, or None when it is to be dropped."""
    if len(packet) < HEADER.size:
        return None
    qid, flags, qdcount = HEADER.unpack_from(packet)[:3]
    if flags & 0x8000:  # a response: never answer one
        return None
    if (flags >> 11) & 0xF != 0:
        return _header(qid, flags, NOTIMP)
    if qdcount != 1:
        return _header(qid, flags, FORMERR)
    parsed = _question(packet)
    if parsed is None:
        return _header(qid, flags, FORMERR)
    name, end = parsed
    question = packet[12 : end + 4]
    qtype, qclass = struct.unpack_from("!HH", packet, end)
    if qclass != CLASS_IN:
        return _header(qid, flags, REFUSED, qd=1) + question
    if name is None:
        return _header(qid, flags, NXDOMAIN, qd=1) + question
    if qtype != A:
        return _header(qid, flags, NOERROR, qd=1) + question
    address = names.address_of(name.decode("ascii"))
    if address is None:
        return _header(qid, flags, SERVFAIL, qd=1) + question
    record = ANSWER.pack(0xC00C, A, CLASS_IN, TTL, 4) + bytes(map(int, address.split(".")))
    return _header(qid, flags, NOERROR, qd=1, an=1) + question + record
