"""Issue 12, item 4: clients that ignore the proxy variables work unchanged in a sandbox.

Node's ``fetch`` and ``https.get``, urllib3's ``PoolManager``, a static Go program and
``curl --noproxy '*'`` run with no proxy variable at all. They look the name up (the init
answers with a loopback address of the name's own), connect to port 443 or 80 of that address,
and the init hands the connection to the proxy as ``CONNECT name:port``: the secret is injected
for the allowlisted upstream exactly as for a proxy-aware client, and a name that is not
allowlisted is refused with a line on the job's stderr. No DNS query leaves the sandbox: it has
no interface but ``lo`` and its resolv.conf names the init.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from core.placeholders import is_opaque
from sandbox import names
from tests.sandbox.helpers import Home, Result, vault_set
from tests.sandbox.names_support import (
    Upstreams,
    curl_noproxy,
    go_get,
    loopback_upstreams,
    node_fetch,
    node_https,
    run_clients,
    status_and_body,
    urllib3_pool,
)

pytestmark = pytest.mark.docker

API = "api.clients.test"
EVIL = "evil.clients.test"
NAME = "T"
PREFIX = "cc-clients-canary-"
CLIENTS = {"node_fetch": node_fetch, "node_https": node_https, "urllib3": urllib3_pool,
           "go": go_get}  # fmt: skip


@dataclass
class Clients:
    value: str
    mark: str
    result: Result
    report: dict[str, Any]
    up: Upstreams

    def out(self, case: str) -> dict[str, Any]:
        return dict(self.report["clients"][case])

    def received(self, case: str) -> list[Any]:
        tag = f"c={case}&m={self.mark}"
        return [r for up in (self.up.tls, self.up.plain) for r in up.received if tag in r.path]


@pytest.fixture(scope="module")
def image(clients_test_image: str) -> str:
    return clients_test_image


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory, image: str, test_ca: trustme.CA,
       ca_file: Path) -> Iterator[Clients]:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("clients"))
    value, mark = PREFIX + secrets.token_hex(16), secrets.token_hex(6)
    vault_set(home, NAME, value, API)
    with loopback_upstreams(test_ca, (API,)) as up:

        def url(case: str, scheme: str = "https", host: str = API) -> str:
            return f"{scheme}://{host}/echo?c={case}&m={mark}"

        arg = {
            "clients": {
                **{case: make(url(case)) for case, make in CLIENTS.items()},
                "curl_https": curl_noproxy(url("curl_https")),
                "curl_http": curl_noproxy(url("curl_http", "http")),
                "node_fetch_evil": node_fetch(url("node_fetch_evil", host=EVIL)),
                "go_evil": go_get(url("go_evil", host=EVIL)),
                "curl_http_evil": curl_noproxy(url("curl_http_evil", "http", EVIL)),
            },
            "names": [API, "anything.example", "x.invalid", "localhost"],
        }
        flags = ["--secret", NAME, "--resolve", f"{API}:{up.address}"]
        result, report = run_clients(home, image, ca_file, flags, arg)
        yield Clients(value, mark, result, report, up)


def test_the_run_exited_zero_and_the_clients_had_no_proxy_variable(cl: Clients) -> None:
    assert cl.result.code == 0, str(cl.result)
    assert cl.report["env_has_proxy"]  # the sandbox sets them...
    assert "NODE_USE_ENV_PROXY" in cl.report["env_has_proxy"]  # (for Node >= 24)


@pytest.mark.parametrize("case", [*CLIENTS, "curl_https"])
def test_client_reaches_the_allowlisted_upstream_through_the_proxy(cl: Clients, case: str
                                                                   ) -> None:  # fmt: skip
    out = cl.out(case)
    assert out["rc"] == 0, out
    assert status_and_body(case, out["stdout"])[0] == "200", out
    [got] = cl.received(case)
    assert got.header("Authorization") == f"Bearer {cl.value}"  # the real value, upstream only


@pytest.mark.parametrize("case", [*CLIENTS, "curl_https"])
def test_client_sees_only_the_placeholder(cl: Clients, case: str) -> None:
    out = cl.out(case)
    headers = json.loads(status_and_body(case, out["stdout"])[1])["headers"]
    [auth] = [v for k, v in headers.items() if k.lower() == "authorization"]
    assert is_opaque(auth.removeprefix("Bearer ")), headers  # the echo, scrubbed back
    assert PREFIX not in cl.result.stdout + cl.result.stderr


def test_plain_http_on_port_80_goes_through_the_proxy(cl: Clients) -> None:
    out = cl.out("curl_http")
    assert out["rc"] == 0, out
    [got] = cl.received("curl_http")
    assert got.header("Host") == API
    assert got in cl.up.plain.received
    assert status_and_body("curl_http", out["stdout"])[0] == "200", out


@pytest.mark.parametrize("case", ["node_fetch_evil", "go_evil"])
def test_a_name_not_allowlisted_fails_with_a_clear_line(cl: Clients, case: str) -> None:
    out = cl.out(case)
    assert out["rc"] != 0, out
    assert cl.received(case) == []
    line = f"coatcheck: connection to {EVIL}:443 refused by the proxy (not_allowlisted)"
    assert line in cl.result.stderr


def test_plain_http_to_a_name_not_allowlisted_gets_the_proxy_refusal(cl: Clients) -> None:
    out = cl.out("curl_http_evil")
    assert "not_allowlisted" in out["stdout"] + out["stderr"], out
    assert f"{EVIL}:80 is not on this run's allowlist" in out["stdout"], out
    assert cl.received("curl_http_evil") == []
    assert f"connection to {EVIL}:80 refused by the proxy (not_allowlisted)" in cl.result.stderr


def test_every_name_resolves_to_a_mapped_loopback_address(cl: Clients) -> None:
    got = cl.report["names"]
    for name in (API, "anything.example", "x.invalid"):
        [address] = got[name]
        assert address.startswith(names.POOL) and address != "127.0.0.1", got
    assert len({got[n][0] for n in (API, "anything.example", "x.invalid")}) == 3
    assert "127.0.0.1" in got["localhost"]


def test_dns_goes_to_the_init_and_there_is_nowhere_else_to_go(cl: Clients) -> None:
    servers = [ln.split()[1] for ln in cl.report["resolv_conf"].splitlines()
               if ln.startswith("nameserver")]  # fmt: skip
    assert servers == [names.DNS_ADDRESS], cl.report["resolv_conf"]
    assert cl.report["interfaces"] == ["lo"]
