"""Audit truth on the addon: ``secrets_injected`` names a secret only if its request left.

An internal error can't be provoked through the real proxy; here a hook fails after the header
was swapped, and the line must still say nothing was injected. (The other refusal paths run
against the real proxy in tests/security/test_audit_truth.py.)
"""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from proxy import rewrite
from proxy.addon import Coatcheck, Tunnel, run_peername
from proxy.audit import Audit
from proxy.engine import DictValues, Engine
from proxy.runs import parse_run
from tests.proxy.test_addon import Recorder

VALUE = "real-secret-value-0123456789"
HOST = "api.example.test"
PH = "ccph_" + "B" * 26


@pytest.fixture
def addon() -> tuple[Coatcheck, Recorder]:
    engine = Engine(DictValues({"TOKEN": VALUE}))
    secret = {"name": "TOKEN", "placeholder": PH, "domains": [HOST]}
    engine.register(parse_run({"run_id": "r-audit1", "secrets": [secret], "on_leak": "block"}))
    lines = Recorder()
    return Coatcheck(engine, Audit(lines)), lines  # type: ignore[arg-type]


def _flow(addon: Coatcheck, body: bytes) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.peername = run_peername("r-audit1")
    headers = {"authorization": f"Bearer {PH}", "host": HOST}
    f.request = http.Request.make("POST", f"https://{HOST}:443/v1", body, headers)
    addon.tunnels[f.client_conn.id] = Tunnel(HOST, 443, checked={(HOST, 443): "203.0.113.7"})
    return f


def _injected(lines: Recorder) -> list[list[str]]:
    assert all(VALUE not in line for line in lines.lines)
    return [json.loads(line)["secrets_injected"] for line in lines.lines]


def test_internal_error_after_the_header_was_swapped_names_no_secret(addon, monkeypatch):
    coatcheck, lines = addon

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(rewrite, "rewrite_body", broken)
    with taddons.context(coatcheck):
        f = _flow(coatcheck, b'{"a": 1}')
        coatcheck.requestheaders(f)
        assert f.request.headers["authorization"] == f"Bearer {VALUE}"  # swapped, not sent
        coatcheck.request(f)
    assert f.response is not None and f.response.status_code == 500
    assert _injected(lines) == [[]]


def test_internal_error_after_the_request_left_names_its_secret(addon, monkeypatch):
    coatcheck, lines = addon
    with taddons.context(coatcheck):
        f = _flow(coatcheck, b"")
        coatcheck.requestheaders(f)
        coatcheck.request(f)
        f.response = http.Response.make(200, b"ok")
        monkeypatch.setattr(coatcheck, "_state", None)  # the response hook fails at once
        coatcheck.response(f)
    assert f.response.status_code == 500
    assert _injected(lines) == [["TOKEN"]]


def test_error_before_the_upstream_was_reached_names_no_secret(addon):
    coatcheck, lines = addon
    with taddons.context(coatcheck):
        f = _flow(coatcheck, b"")
        coatcheck.requestheaders(f)
        coatcheck.request(f)
        f.server_conn.timestamp_tls_setup = None  # TLS to the upstream never completed
        f.error = tflow.terr("certificate verify failed")
        coatcheck.error(f)
    assert _injected(lines) == [[]]
