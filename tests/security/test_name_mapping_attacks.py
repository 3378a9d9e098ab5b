"""Attacks on the sandbox's name mapping (issue 12, item 4): a job that connects to the loopback
address its init gave a name is held to exactly the rules of a proxy-aware client.

One sandbox (the clients image, no proxy variable) tries: TLS to the address of an allowlisted
name with another name in its SNI, or in its Host header; the address of no name, and a mapped
address on another port; names that would smuggle bytes into the CONNECT line the init writes;
an IP literal asked as a name; hostile DNS packets over UDP and TCP, after which lookups must
still work. Each test asserts where the secret went (the upstream got no request) and what the
job saw.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from sandbox import names
from tests.sandbox.helpers import Home, Result, vault_set
from tests.sandbox.names_support import Upstreams, loopback_upstreams, node_fetch, run_clients

pytestmark = pytest.mark.docker

API = "api.clients.test"
EVIL = "evil.clients.test"
NAME = "T"
UNMAPPED = names.POOL + "250.250"  # in the pool, but no name was given it


def query(raw_name: bytes, qtype: int = names.A) -> str:
    header = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    return (header + raw_name + struct.pack("!HH", qtype, 1)).hex()


def rcode(reply_hex: str) -> int:
    assert not reply_hex.startswith("error"), reply_hex
    return bytes.fromhex(reply_hex)[3] & 0xF


def one_label(text: bytes) -> bytes:
    return bytes([len(text)]) + text + b"\0"


SMUGGLED = {  # names whose bytes would rewrite "CONNECT name:443 HTTP/1.1"
    "crlf": one_label(b"api.clients.test\r\nX: y"),
    "space": one_label(b"api.clients.test:443 HTTP/1.1"),
    "colon": one_label(b"api.clients.test:22"),
}
GARBAGE = {
    "short": "1234",
    "pointer_loop": (struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\0\x01\0\x01").hex(),
    "many_questions": (struct.pack("!HHHHHH", 1, 0x0100, 500, 0, 0, 0) + b"\0" * 40).hex(),
    "oversized": (struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + (b"\x3f" + b"a" * 63) * 5
                  + b"\0\0\x01\0\x01").hex(),
}  # fmt: skip


@dataclass
class Attack:
    mark: str
    value: str
    result: Result
    report: dict[str, Any]
    up: Upstreams

    def upstream_got(self, case: str) -> list[str]:
        return self.up.requests_with(f"c={case}&m={self.mark}")


@pytest.fixture(scope="module")
def image(clients_test_image: str) -> str:
    return clients_test_image


@pytest.fixture(scope="module")
def atk(tmp_path_factory: pytest.TempPathFactory, image: str, test_ca: trustme.CA,
        ca_file: Path) -> Iterator[Attack]:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("namemap"))
    value, mark = "cc-namemap-" + secrets.token_hex(16), secrets.token_hex(6)
    vault_set(home, NAME, value, API)
    with loopback_upstreams(test_ca, (API, EVIL)) as up:

        def path(case: str) -> str:
            return f"/echo?c={case}&m={mark}"

        def get(case: str, host: str) -> str:
            return f"GET {path(case)} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"

        arg = {
            "sni": {
                "sni_evil": [API, EVIL, API, path("sni_evil")],
                "host_evil": [API, API, EVIL, path("host_evil")],
            },
            "dns": {
                **{f"smuggle_{k}": [query(v), "udp"] for k, v in SMUGGLED.items()},
                "ip_literal": [
                    query(
                        b"".join(bytes([len(p)]) + p.encode() for p in up.address.split("."))
                        + b"\0"
                    ),
                    "udp",
                ],
                **{f"garbage_{k}_{t}": [v, t] for k, v in GARBAGE.items() for t in ("udp", "tcp")},
            },  # fmt: skip
            "connect": {
                "unmapped_443": [UNMAPPED, 443, get("unmapped_443", API)],
                "localhost_80": ["127.0.0.1", 80, get("localhost_80", API)],
                "mapped_other_port": [API, 8443, get("mapped_other_port", API)],
            },
            "clients": {"ip_as_name": node_fetch(f"https://{up.address}{path('ip_as_name')}")},
            "names": [API, "after.garbage.test"],
        }
        flags = ["--secret", NAME, "--resolve", f"{API}:{up.address}",
                 "--resolve", f"{EVIL}:{up.address}"]  # fmt: skip
        result, report = run_clients(home, image, ca_file, flags, arg)
        yield Attack(mark, value, result, report, up)


def test_the_attack_run_completed(atk: Attack) -> None:
    assert atk.result.code == 0, str(atk.result)


def test_sni_naming_another_host_than_the_looked_up_name_is_refused(atk: Attack) -> None:
    got = atk.report["sni"]["sni_evil"]
    assert got["ok"] and got["response"].startswith("HTTP/1.1 403"), got
    assert "X-Coatcheck-Reason: sni_mismatch" in got["response"], got
    assert atk.upstream_got("sni_evil") == []


def test_host_header_naming_another_host_is_refused(atk: Attack) -> None:
    got = atk.report["sni"]["host_evil"]
    assert got["ok"] and got["response"].startswith("HTTP/1.1 403"), got
    assert "X-Coatcheck-Reason: host_mismatch" in got["response"], got
    assert atk.upstream_got("host_evil") == []


def test_the_address_of_no_name_is_refused_with_a_line(atk: Attack) -> None:
    got = atk.report["connect"]["unmapped_443"]
    assert not got.get("response"), got
    assert f"connection to {UNMAPPED}:443 refused: no name" in atk.result.stderr
    assert atk.upstream_got("unmapped_443") == []


def test_127_0_0_1_port_80_is_not_a_way_out(atk: Attack) -> None:
    got = atk.report["connect"]["localhost_80"]
    assert not got.get("response"), got
    assert "connection to 127.0.0.1:80 refused: no name" in atk.result.stderr
    assert atk.upstream_got("localhost_80") == []


def test_a_mapped_address_on_another_port_goes_nowhere(atk: Attack) -> None:
    got = atk.report["connect"]["mapped_other_port"]
    assert not got["ok"] and "ConnectionRefused" in got["error"], got
    assert atk.upstream_got("mapped_other_port") == []


@pytest.mark.parametrize("case", SMUGGLED)
def test_a_name_that_is_not_a_host_name_gets_no_address(atk: Attack, case: str) -> None:
    assert rcode(atk.report["dns"][f"smuggle_{case}"]) == names.NXDOMAIN


def test_the_upstreams_own_address_is_not_a_way_out(atk: Attack) -> None:
    """``https://<the upstream's IP>/``: no lookup, so the connection reaches the init on an
    address it gave no name (all of 127/8 is the sandbox's own loopback), and is refused."""
    out = atk.report["clients"]["ip_as_name"]
    assert out["rc"] != 0, out
    assert atk.upstream_got("ip_as_name") == []
    assert f"connection to {atk.up.address}:443 refused: no name" in atk.result.stderr


def test_an_ip_literal_asked_as_a_name_is_mapped_like_any_name(atk: Attack) -> None:
    """A pool address, like any name: a connection to it is ``CONNECT <ip>:443``, which the
    proxy checks as the IP literal it is (refused unless its range is allowed)."""
    reply = bytes.fromhex(atk.report["dns"]["ip_literal"])
    assert rcode(reply.hex()) == names.NOERROR
    assert ".".join(map(str, reply[-4:])).startswith(names.POOL)


@pytest.mark.parametrize("case", GARBAGE)
def test_hostile_dns_packets_get_formerr_or_nothing(atk: Attack, case: str) -> None:
    for transport in ("udp", "tcp"):
        reply = atk.report["dns"][f"garbage_{case}_{transport}"]
        nothing = reply == "" or reply.startswith("error")  # dropped, or the TCP stream closed
        assert nothing or rcode(reply) == names.FORMERR, (transport, reply)


def test_lookups_still_work_after_the_garbage(atk: Attack) -> None:
    got = atk.report["names"]
    assert got["after.garbage.test"][0].startswith(names.POOL), got
    assert got[API][0].startswith(names.POOL), got


def test_the_secret_never_left_for_any_refused_attempt(atk: Attack) -> None:
    assert all(atk.value not in r.raw().decode("utf-8", "replace")
               for up in (atk.up.tls, atk.up.plain) for r in up.received)  # fmt: skip
    assert atk.value not in atk.result.stdout + atk.result.stderr
