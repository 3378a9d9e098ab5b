"""security.md, "the network boundary": a sandbox reaches the proxy and nothing else.

One sandbox runs a probe that attacks every way out at once (direct TCP and UDP to canaries
listening on every address of this host, a neighbour container on the default bridge, DNS for
outside names, ``curl --noproxy '*'``, the cloud metadata address) and reports what happened;
each test below asserts one claim from that report and from what the canaries recorded.
No probe targets a public address: canaries live on this machine, outside names are reserved.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox import names
from tests.sandbox.conftest import Neighbour
from tests.sandbox.helpers import (
    Canary,
    Home,
    Result,
    bridge_gateway,
    coatcheck,
    host_addresses,
    key_fingerprints,
    probe_command,
    self_test,
)

pytestmark = pytest.mark.docker

OUTSIDE_NAMES = ("outside.example", "exfil.invalid")
METADATA = "169.254.169.254"
PROXY_PORT = 3128


@dataclass
class Isolation:
    home: Home
    result: Result
    probe: dict[str, Any]
    gateway: str
    addresses: list[str]
    loopback: Canary
    gateway_canary: Canary
    host_canary: Canary
    noproxy_canary: Canary
    udp_canary: Canary
    neighbour: Neighbour
    neighbour_hits: int


def _url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}/"


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory, docker_api: Any,
        neighbour: Neighbour) -> Iterator[Isolation]:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("isolation"))
    tcp = [Canary().start() for _ in range(4)]
    udp = Canary(kind=socket.SOCK_DGRAM).start()
    loopback, gateway_canary, host_canary, noproxy_canary = tcp
    try:
        for canary in (*tcp, udp):
            self_test(canary)
        socket.create_connection((neighbour.ip, neighbour.port), timeout=5).close()
        deadline = time.monotonic() + 10
        while neighbour.connections() != 1:  # the neighbour records the host's connection
            assert time.monotonic() < deadline, neighbour.container.logs()
            time.sleep(0.05)
        gateway = bridge_gateway(docker_api, neighbour.container)
        addresses = host_addresses(gateway)[1:]  # all but 127.0.0.1, which has its own canary
        arg = {
            "proxy_port": PROXY_PORT,
            "connect": [
                ["127.0.0.1", loopback.port],
                [gateway, gateway_canary.port],
                *([a, host_canary.port] for a in addresses),
                [neighbour.ip, neighbour.port],
                [METADATA, 80],
            ],
            "udp": [[a, udp.port] for a in ["127.0.0.1", *addresses]],
            "names": list(OUTSIDE_NAMES),
            "noproxy_urls": [
                _url(scheme, a, noproxy_canary.port)
                for a in ["127.0.0.1", *addresses]
                for scheme in ("https", "http")
            ],
        }
        result = coatcheck(home, "run", "--", *probe_command("isolation", arg))
        probe = result.probe()
        neighbour_hits = neighbour.connections() - 1  # minus the host's own self-test connection
        yield Isolation(home, result, probe, gateway, addresses, loopback, gateway_canary,
                        host_canary, noproxy_canary, udp, neighbour, neighbour_hits)  # fmt: skip
    finally:
        for canary in (*tcp, udp):
            canary.close()


def test_probe_ran_in_the_sandbox_and_exited_zero(iso: Isolation) -> None:
    assert iso.result.code == 0, str(iso.result)


def test_probe_can_reach_the_proxy_port_on_its_loopback(iso: Isolation) -> None:
    # The control case: the same connect code does work where the sandbox is meant to connect.
    assert iso.probe["proxy_port"] == "connected"


def test_no_direct_tcp_to_host_loopback(iso: Isolation) -> None:
    target = f"127.0.0.1:{iso.loopback.port}"
    assert iso.probe["connect"][target] != "connected"
    assert iso.loopback.hits == []


def test_no_direct_tcp_to_docker_bridge_gateway(iso: Isolation) -> None:
    assert iso.gateway, "no gateway in `docker network inspect bridge`"
    assert iso.probe["connect"][f"{iso.gateway}:{iso.gateway_canary.port}"] != "connected"
    assert iso.gateway_canary.hits == []


def test_no_direct_tcp_to_any_host_address(iso: Isolation) -> None:
    assert iso.addresses, "hostname -I listed no address to attack"
    outcomes = {a: iso.probe["connect"][f"{a}:{iso.host_canary.port}"] for a in iso.addresses}
    assert all(o != "connected" for o in outcomes.values()), outcomes
    assert iso.host_canary.hits == []


def test_no_udp_to_any_host_address(iso: Isolation) -> None:
    assert iso.udp_canary.hits == []
    sent = {k: v for k, v in iso.probe["udp"].items() if not k.startswith("127.0.0.1:")}
    assert all(v != "sent" for v in sent.values()), sent


def test_no_tcp_to_another_container_on_the_bridge(iso: Isolation) -> None:
    target = f"{iso.neighbour.ip}:{iso.neighbour.port}"
    assert iso.probe["connect"][target] != "connected"
    assert iso.neighbour_hits == 0


# Names resolve since issue 12 (clients that ignore proxy variables): the sandbox's init answers
# every lookup itself with a loopback address of its pool, which leads to the proxy and nowhere
# else (tests/sandbox/test_unproxied_clients.py). What must hold: no real address ever comes
# back, and no query leaves (there is no interface but lo to send it on).
@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_outside_names_resolve_only_to_the_inits_loopback_pool(iso: Isolation, name: str) -> None:
    got = iso.probe["resolve"][name]
    assert got.startswith(f"resolved: {names.POOL}") and "," not in got, got


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_getent_gets_only_the_inits_loopback_pool(iso: Isolation, name: str) -> None:
    got = iso.probe["getent"][name]
    assert got["rc"] == 0, got
    assert [line.split()[0] for line in got["stdout"].splitlines()] == [
        iso.probe["resolve"][name].removeprefix("resolved: ")
    ], got


def test_curl_noproxy_to_a_host_canary_fails(iso: Isolation) -> None:
    outcomes = iso.probe["curl_noproxy"]
    assert len(outcomes) == 2 * (1 + len(iso.addresses))
    assert all(o["rc"] != 0 for o in outcomes.values()), outcomes
    assert iso.noproxy_canary.hits == []


def test_cloud_metadata_address_is_unreachable(iso: Isolation) -> None:
    assert iso.probe["connect"][f"{METADATA}:80"] != "connected"


def test_only_the_loopback_interface_exists(iso: Isolation) -> None:
    assert iso.probe["interfaces"] == ["lo"]


def test_there_is_no_route_at_all(iso: Isolation) -> None:
    assert iso.probe["routes"] == []


def test_no_docker_socket_in_the_sandbox(iso: Isolation) -> None:
    assert iso.probe["docker_sockets"] == []


def test_run_dir_mount_holds_only_the_proxy_socket(iso: Isolation) -> None:
    assert iso.probe["run_dir"] == {"proxy.sock": "socket"}


def test_ca_mounts_hold_only_the_proxy_certificate(iso: Isolation) -> None:
    cert = (iso.home.ca_dir / "mitmproxy-ca-cert.pem").read_text()
    assert "PRIVATE" not in cert
    assert iso.probe["ca_mount"] == cert
    assert iso.probe["system_bundle"] == cert


def test_proxy_ca_private_key_is_nowhere_in_the_sandbox(iso: Isolation) -> None:
    ours = key_fingerprints(iso.home.ca_dir)
    assert ours, "the proxy's CA key was not found on the host (the comparison would be empty)"
    found = iso.probe["private_keys"]
    assert not ours & {k["sha256"] for k in found}
    # The image's libraries (libgnutls) embed self-test keys; nothing else may hold one.
    assert [k["path"] for k in found if not k["path"].startswith("/usr/lib/")] == []
