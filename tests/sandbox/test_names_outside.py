"""Name-mapped connections from outside, with raw clients and odd spellings: HTTP/1.0 without a
``Host`` header on port 80, upper-case and trailing-dot names (on 443 and 80), a wrong ``Host``
and a wrong SNI, an opaque host reached over plain HTTP, and an IP literal on port 443. Each
is checked where it went (the upstream's log), what the client got, and its audit line."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.sandbox.helpers import Home, Result, coatcheck
from tests.sandbox.names_support import Upstreams, loopback_upstreams

pytestmark = pytest.mark.docker

API = "api.outside.test"
OTHER = "other.outside.test"
OPAQUE = "opaque.outside.test"
PROBE = (Path(__file__).parent / "names_outside_probe.py").read_text()
MARKER = "COATCHECK-NAMES "


@dataclass
class Outside:
    mark: str
    result: Result
    got: dict[str, str]
    audit: list[dict[str, Any]]
    up: Upstreams

    def reached(self, kind: str) -> bool:
        return any(f"k={kind}&m={self.mark}" in p for p in self.up.requests_with(self.mark))

    def audited(self, **match: Any) -> list[dict[str, Any]]:
        return [a for a in self.audit if all(a.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory, test_ca: trustme.CA,
            ca_file: Path) -> Iterator[Outside]:  # fmt: skip
    home = Home(tmp_path_factory.mktemp("outside"))
    mark = secrets.token_hex(6)
    with loopback_upstreams(test_ca, (API, OTHER, OPAQUE)) as up:
        resolve = [f for n in (API, OTHER, OPAQUE) for f in ("--resolve", f"{n}:{up.address}")]
        arg = json.dumps({"api": API, "other": OTHER, "opaque": OPAQUE, "mark": mark})
        r = coatcheck(home, "run", "--allow", API, "--allow", OTHER, "--allow-opaque", OPAQUE,
                      *resolve, "--upstream-ca", str(ca_file), "--", "python3", "-c", PROBE,
                      arg)  # fmt: skip
        lines = [x for x in r.stdout.splitlines() if x.startswith(MARKER)]
        assert r.code == 0 and lines, str(r)
        audit = [json.loads(x) for x in home.audit_log.read_text().splitlines()]
        yield Outside(mark, r, json.loads(lines[0][len(MARKER) :]), audit, up)


def status(reply: str) -> str:
    return reply.split("\r\n", 1)[0]


def test_http10_without_host_on_port_80_reaches_the_name_it_looked_up(outside: Outside) -> None:
    assert status(outside.got["http10_no_host"]) == "HTTP/1.1 200 OK"
    assert outside.reached("h10")
    assert outside.audited(host=API, port=80, status=200, decision="allow")


def test_a_host_header_naming_another_host_is_refused(outside: Outside) -> None:
    reply = outside.got["http_wrong_host"]
    assert status(reply).startswith("HTTP/1.1 403")
    assert "X-Coatcheck-Reason: host_mismatch" in reply
    assert not outside.reached("wh")
    assert outside.audited(host=API, port=80, reason="host_mismatch", decision="deny")


@pytest.mark.parametrize("kind", ["tu", "td", "hu"])
def test_upper_case_and_trailing_dot_names_reach_the_same_host(outside: Outside, kind: str
                                                                ) -> None:  # fmt: skip
    reply = {"tu": "tls_upper", "td": "tls_dot", "hu": "http_upper_dot"}[kind]
    assert status(outside.got[reply]) == "HTTP/1.1 200 OK", outside.got[reply]
    assert outside.reached(kind)
    assert {a["host"] for a in outside.audit if a.get("status") == 200} <= {API, OPAQUE}


def test_an_sni_naming_another_host_is_refused_and_audited(outside: Outside) -> None:
    assert not outside.reached("ts")
    assert outside.audited(host=API, port=443, reason="sni_mismatch", decision="deny")


def test_an_ip_literal_on_port_443_is_closed_with_a_line(outside: Outside) -> None:
    assert "ERROR" in outside.got["literal_443"] or outside.got["literal_443"] == ""
    assert "connection to 127.0.0.1:443 refused: no name" in outside.result.stderr


def test_plain_http_to_an_opaque_host_never_reaches_it(outside: Outside) -> None:
    assert not outside.reached("op")
    [line] = outside.audited(host=OPAQUE, port=80)
    assert (line["decision"], line["reason"], line["bytes_up"]) == ("deny", "not_tls", 0)


def test_plain_http_to_an_opaque_host_gets_the_proxys_refusal(outside: Outside) -> None:
    reply = outside.got["opaque_plain_http"]
    assert status(reply).startswith("HTTP/1.1 403"), repr(reply)
    assert "X-Coatcheck-Reason: not_tls" in reply
