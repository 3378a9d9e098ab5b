"""Fixtures of the attack suite: canaries, a hostile upstream, a plain-HTTP server, and checks
of where a canary went.

Every attack stores a distinctive canary as the real value of a vaulted secret (in the session
proxy's vault), attacks, and then asks :class:`Trail` where the canary ended up: the only place
it may be is a request an allowlisted upstream received for the secret's own host.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import trustme

from tests.conftest import TEST_NAMES
from tests.security.hostile import Server, start_hostile, start_plain
from tests.support.harness import ProxyHarness, Run
from tests.support.upstream import Upstream

API = "api.coatcheck.test"
OTHER = "other.coatcheck.test"
EVIL = "evil.test"
SUFFIX = "api.coatcheck.test.evil.test"
IDN_UNICODE = "bücher.coatcheck.test"
IDN = "xn--bcher-kva.coatcheck.test"
APEX = "coatcheck.test"
PLAIN = "plain.coatcheck.test"
HOSTILE_NAMES = (*TEST_NAMES, IDN, APEX)


def new_canary() -> str:
    return "cc-canary-" + secrets.token_hex(12)


@pytest.fixture
def canary() -> str:
    return new_canary()


@pytest.fixture(scope="session")
def hostile(test_ca: trustme.CA) -> Iterator[Server]:
    srv = start_hostile(test_ca, HOSTILE_NAMES)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def plain() -> Iterator[Server]:
    srv = start_plain((PLAIN,))
    yield srv
    srv.close()


@pytest.fixture
def secret(vault_secret, canary):  # type: ignore[no-untyped-def]
    """``secret(NAME, domains=[...], **vault_kw)`` stores the canary as NAME's value."""

    def store(
        name: str, domains: list[str] | None = None, value: str | None = None, **kw: object
    ) -> str:
        vault_secret(name, value if value is not None else canary, domains or [API], **kw)
        return name

    return store


@dataclass
class Trail:
    """Where a value went: upstream records, the audit log, responses the client saw."""

    proxy: ProxyHarness
    servers: tuple[Upstream | Server, ...]

    def hosts_that_got(self, value: str) -> set[str]:
        needle = value.encode()
        hosts: set[str] = set()
        for srv in self.servers:
            for r in srv.received:
                if needle in r.raw():
                    hosts.add((r.header("Host") or "?").rsplit(":", 1)[0].lower())
        return hosts

    def requests_with(self, value: str) -> int:
        needle = value.encode()
        return sum(needle in r.raw() for srv in self.servers for r in srv.received)

    def audit_text(self) -> str:
        return self.proxy.audit_log.read_text() if self.proxy.audit_log.exists() else ""

    def leaks(self, run: Run) -> list[dict[str, object]]:
        return [e for e in self.proxy.audit_for(run) if e.get("event") == "placeholder_leak"]

    def requests(self, run: Run) -> list[dict[str, object]]:
        return [e for e in self.proxy.audit_for(run) if e.get("event") == "proxy_request"]

    def assert_contained(
        self, value: str, *, may_reach: tuple[str, ...] = (), seen: tuple[bytes | str, ...] = ()
    ) -> None:
        """``value`` reached at most ``may_reach``; it is not in the audit log nor in ``seen``
        (responses, outputs the client got)."""
        got = self.hosts_that_got(value)
        assert got <= set(may_reach), f"the real value reached {sorted(got - set(may_reach))}"
        assert value not in self.audit_text(), "the real value is in the audit log"
        for item in seen:
            data = item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item
            assert value.encode() not in data, "the real value went back to the client"


@pytest.fixture
def trail(proxy: ProxyHarness, upstream: Upstream, hostile: Server, plain: Server) -> Trail:
    return Trail(proxy, (upstream, hostile, plain))


Register = Callable[..., Run]
