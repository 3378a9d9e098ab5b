"""sandbox/names.py: the sandbox's DNS answers and its name <-> address map (pure)."""

from __future__ import annotations

import struct
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox import names
from sandbox.names import NameMap, answer

HEADER = struct.Struct("!HHHHHH")


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def query(name: str | bytes, qtype: int = names.A, *, qid: int = 0x1234, flags: int = 0x0100,
          qdcount: int = 1, qclass: int = names.CLASS_IN) -> bytes:  # fmt: skip
    raw = wire_name(name) if isinstance(name, str) else name
    return HEADER.pack(qid, flags, qdcount, 0, 0, 0) + raw + struct.pack("!HH", qtype, qclass)


def parse(reply: bytes | None) -> dict[str, object]:
    assert reply is not None
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(reply)
    out: dict[str, object] = {"id": qid, "rcode": flags & 0xF, "qr": bool(flags & 0x8000),
                              "rd": bool(flags & 0x0100), "qd": qd, "an": an}  # fmt: skip
    if an:
        rdata = reply[-4:]
        assert reply[-16:-14] == b"\xc0\x0c"  # points at the question's name
        out["address"] = ".".join(str(b) for b in rdata)
    return out


@pytest.fixture
def table() -> NameMap:
    return NameMap()


# -- answers ---------------------------------------------------------------------------------
def test_a_query_gets_a_pool_address_echoing_id_and_question(table: NameMap) -> None:
    q = query("api.clients.test")
    reply = answer(q, table)
    got = parse(reply)
    assert got == {"id": 0x1234, "rcode": names.NOERROR, "qr": True, "rd": True, "qd": 1,
                   "an": 1, "address": "127.100.0.1"}  # fmt: skip
    assert reply is not None and reply[12 : len(q)] == q[12:]


def test_same_name_same_address_any_case_or_trailing_dot(table: NameMap) -> None:
    first = parse(answer(query("API.Clients.test"), table))["address"]
    assert parse(answer(query("api.clients.test."), table))["address"] == first
    assert table.name_of(str(first)) == "api.clients.test"


def test_each_name_gets_its_own_address_never_127_0_0_1(table: NameMap) -> None:
    got = {parse(answer(query(f"n{i}.test"), table))["address"] for i in range(600)}
    assert len(got) == 600
    assert "127.0.0.1" not in got
    assert all(str(a).startswith("127.100.") for a in got)
    assert not any(str(a).endswith((".0", ".255")) for a in got)


@pytest.mark.parametrize("name", ["localhost", "db.localhost"])
def test_localhost_keeps_127_0_0_1(table: NameMap, name: str) -> None:
    assert parse(answer(query(name), table))["address"] == "127.0.0.1"
    assert len(table) == 0


@pytest.mark.parametrize("qtype", [names.AAAA, 12, 15, 16, 33, 65, 255], ids=lambda t: f"type{t}")
def test_other_types_get_an_empty_noerror_answer(table: NameMap, qtype: int) -> None:
    assert parse(answer(query("api.clients.test", qtype), table)) | {"id": 0} == {
        "id": 0, "rcode": names.NOERROR, "qr": True, "rd": True, "qd": 1, "an": 0}  # fmt: skip
    assert len(table) == 0  # only an A query takes an address


def test_a_class_other_than_in_is_refused(table: NameMap) -> None:
    assert parse(answer(query("x.test", qclass=3), table))["rcode"] == names.REFUSED


@pytest.mark.parametrize(
    "raw",
    [b"\x03a\r\n\x04test\0", b"\x05a b c\x04test\0", b"\x03a:1\x04test\0", b"\x03a\x00b\x04test\0",
     b"\x03a.b\x04test\0", b"\x02\xc3\xa9\x04test\0", b"\0"],
    ids=["crlf", "space", "colon", "nul", "dot-in-label", "utf8", "root"],
)  # fmt: skip
def test_what_is_not_a_host_name_gets_nxdomain_and_no_address(table: NameMap, raw: bytes) -> None:
    """Only a host name may reach the CONNECT line the init writes for its address."""
    assert parse(answer(query(raw), table))["rcode"] == names.NXDOMAIN
    assert len(table) == 0


def test_a_full_pool_refuses_new_names_and_never_reuses_an_address() -> None:
    table = NameMap(limit=3)
    given = [parse(answer(query(f"n{i}.test"), table))["address"] for i in range(3)]
    assert parse(answer(query("late.test"), table))["rcode"] == names.SERVFAIL
    assert table.name_of("127.100.0.4") is None
    # Names already mapped keep their address.
    assert parse(answer(query("n1.test"), table))["address"] == given[1]
    assert [table.name_of(str(a)) for a in given] == ["n0.test", "n1.test", "n2.test"]


def test_the_whole_pool_holds_65000_distinct_addresses() -> None:
    table = NameMap()
    addresses = {table.address_of(f"n{i}.test") for i in range(names.MAX_NAMES)}
    assert None not in addresses and len(addresses) == names.MAX_NAMES
    assert table.address_of("one.more.test") is None


def test_concurrent_lookups_never_share_an_address() -> None:
    table = NameMap()
    start = threading.Barrier(8)

    def look(k: int) -> None:
        start.wait()
        for i in range(300):
            table.address_of(f"n{i % 150}-{k % 2}.test")

    threads = [threading.Thread(target=look, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(table) == 300
    assert {table.name_of(str(table.address_of(f"n{i}-{k}.test"))) for i in range(150)
            for k in (0, 1)} == {f"n{i}-{k}.test" for i in range(150) for k in (0, 1)}  # fmt: skip


# -- hostile packets -------------------------------------------------------------------------
@pytest.mark.parametrize("packet", [b"", b"\x12", b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00"],
                         ids=["empty", "one-byte", "short-header"])  # fmt: skip
def test_a_packet_shorter_than_a_header_is_dropped(table: NameMap, packet: bytes) -> None:
    assert answer(packet, table) is None


def test_a_response_is_never_answered(table: NameMap) -> None:
    assert answer(query("x.test", flags=0x8180), table) is None


@pytest.mark.parametrize("qdcount", [0, 2, 65535])
def test_not_exactly_one_question_is_formerr(table: NameMap, qdcount: int) -> None:
    packet = query("x.test", qdcount=qdcount)
    if qdcount == 2:
        packet += wire_name("y.test") + struct.pack("!HH", 1, 1)
    got = parse(answer(packet, table))
    assert (got["rcode"], got["qd"], got["an"]) == (names.FORMERR, 0, 0)
    assert len(table) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b"\xc0\x0c",  # a pointer to itself: a compression loop
        b"\x01a\xc0\x0e",  # a pointer back into the name
        b"\xc0\x00",  # a pointer into the header
        b"\x40abc\0",  # an extended label type
        b"\x3fabc",  # a label longer than the packet
        b"\x04test",  # no terminating zero
        bytes([63]) + b"a" * 63 + bytes([63]) + b"b" * 63 + bytes([63]) + b"c" * 63
        + bytes([63]) + b"d" * 63 + b"\0",  # 257 bytes: over the 255 a name may have
    ],
    ids=["pointer-loop", "pointer-back", "pointer-header", "ext-label", "truncated-label",
         "unterminated", "oversized-name"],
)  # fmt: skip
def test_a_malformed_name_is_formerr_and_maps_nothing(table: NameMap, raw: bytes) -> None:
    packet = HEADER.pack(7, 0x0100, 1, 0, 0, 0) + raw + b"\x00\x01\x00\x01"
    assert parse(answer(packet, table))["rcode"] == names.FORMERR
    assert len(table) == 0


def test_a_question_without_type_and_class_is_formerr(table: NameMap) -> None:
    packet = HEADER.pack(7, 0x0100, 1, 0, 0, 0) + wire_name("x.test") + b"\x00"
    assert parse(answer(packet, table))["rcode"] == names.FORMERR


def test_a_longest_legal_name_is_answered(table: NameMap) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
    assert parse(answer(query(name), table))["address"] == "127.100.0.1"


def test_edns_and_other_records_after_the_question_are_ignored(table: NameMap) -> None:
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    packet = bytearray(query("api.clients.test") + opt)
    packet[11] = 1  # arcount
    got = parse(answer(bytes(packet), table))
    assert (got["rcode"], got["address"]) == (names.NOERROR, "127.100.0.1")


def test_a_non_query_opcode_is_notimp(table: NameMap) -> None:
    assert parse(answer(query("x.test", flags=0x2800), table))["rcode"] == names.NOTIMP


@given(st.binary(max_size=600))
def test_any_bytes_get_a_short_reply_or_none(packet: bytes) -> None:
    reply = answer(packet, NameMap())
    assert reply is None or len(reply) <= len(packet) + 16


@given(st.binary(max_size=300))
def test_any_body_after_a_plausible_header_never_raises(body: bytes) -> None:
    reply = answer(HEADER.pack(1, 0x0100, 1, 0, 0, 0) + body, NameMap())
    assert reply is not None and parse(reply)["id"] == 1


LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=63)


@given(st.lists(LABEL, min_size=1, max_size=4).map(".".join))
def test_any_host_name_maps_to_an_address_that_maps_back(name: str) -> None:
    table = NameMap()
    got = parse(answer(query(name), table))
    if name == "localhost" or name.endswith(".localhost"):
        assert got["address"] == "127.0.0.1"
    else:
        assert table.name_of(str(got["address"])) == name
