"""The addon's response hooks when a real value comes back to a request that carried none
(``unexpected_value``), with mitmproxy's own test tools: no sockets.

A streamed body is cut at the chunk that completes the value (the flow is killed); a buffered
body or a head holding one is replaced by a 502; under ``--on-leak block`` the run's later
requests are refused. A response to a request that carried a value is scrubbed as before
(tests/proxy/test_addon.py).
"""

from __future__ import annotations

import json

import pytest
from mitmproxy import http
from mitmproxy.flow import Error
from mitmproxy.test import taddons

from proxy.addon import REASON_HEADER, Coatcheck
from proxy.audit import Audit
from proxy.engine import DictValues, Engine
from proxy.flowstate import state_of
from proxy.runs import parse_run
from tests.proxy.test_addon import HOST, PH, VALUE, Recorder, make_flow, through_request

OPEN = "open.example.test"  # allowed with no secret


def _setup(on_leak: str = "log"):  # type: ignore[no-untyped-def]
    engine = Engine(DictValues({"TOKEN": VALUE}))
    secret = {"name": "TOKEN", "placeholder": PH, "domains": [HOST]}
    run = parse_run(
        {"run_id": f"r-unexp-{on_leak}", "secrets": [secret], "allow": [OPEN], "on_leak": on_leak}
    )
    engine.register(run)
    rec = Recorder()
    return Coatcheck(engine, Audit(rec)), run, rec  # type: ignore[arg-type]


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    return _setup()


def _lines(rec: Recorder) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in rec.lines if line.strip()]


def _streaming(addon, run, host=OPEN, headers=()):  # type: ignore[no-untyped-def]
    f = make_flow(addon, run, host=host, headers=dict(headers))
    through_request(addon, f)
    f.response = http.Response.make(200, b"", {"Content-Type": "text/event-stream"})
    addon.responseheaders(f)
    return f


def test_a_stream_passes_as_is_until_a_whole_value_then_the_flow_is_killed(setup):
    addon, run, rec = setup
    with taddons.context(addon):
        f = _streaming(addon, run)
        stream = f.response.stream
        assert callable(stream)
        guess = f"data: {VALUE[:-1]}".encode()  # all but the last character: passed at once
        assert stream(guess) == [guess]
        assert stream(b"\n\ndata: " + VALUE[:5].encode()) == [b"\n\ndata: " + VALUE[:5].encode()]
        assert stream(VALUE[5:].encode() + b"\n\n") == []  # completes a value: not sent
        assert stream(b"more") == [] and stream(b"") == []
        assert f.error is not None and f.error.msg == Error.KILLED_MESSAGE
        addon.error(f)
    assert state_of(f.metadata).decision.reason == "unexpected_value"
    [line] = _lines(rec)
    assert (line["decision"], line["reason"], line["status"]) == ("deny", "unexpected_value", 0)
    assert VALUE not in "".join(rec.lines)


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({"X-Echo": VALUE}, b"ok", id="in-the-head"),
        pytest.param({}, f'{{"echo": "{VALUE}"}}'.encode(), id="in-a-buffered-body"),
    ],
)
def test_a_small_response_is_replaced_by_a_502(setup, headers, body):
    addon, run, rec = setup
    with taddons.context(addon):
        f = make_flow(addon, run, host=OPEN)
        through_request(addon, f)
        f.response = http.Response.make(200, body, headers)
        addon.responseheaders(f)
        addon.response(f)
    assert f.response.status_code == 502
    assert f.response.headers[REASON_HEADER] == "unexpected_value"
    assert VALUE.encode() not in f.response.raw_content + bytes(f.response.headers)  # type: ignore[operator]
    [line] = _lines(rec)
    assert (line["status"], line["reason"]) == (502, "unexpected_value")


def test_the_same_response_to_a_request_that_carried_the_value_is_scrubbed(setup):
    addon, run, _ = setup
    with taddons.context(addon):
        f = _streaming(addon, run, host=HOST, headers={"Authorization": f"Bearer {PH}"})
        stream = f.response.stream
        out = [*stream(b"data: " + VALUE[:5].encode()), *stream(VALUE[5:].encode() + b"\n\n")]
        out += stream(b"")
    assert b"".join(out) == f"data: {PH}\n\n".encode()
    assert f.error is None


@pytest.mark.parametrize("on_leak", ["log", "block"])
def test_under_on_leak_block_the_run_is_cut_off(on_leak):
    addon, run, _ = _setup(on_leak)
    with taddons.context(addon):
        f = make_flow(addon, run, host=OPEN)
        through_request(addon, f)
        f.response = http.Response.make(200, VALUE.encode())
        addon.responseheaders(f)
        addon.response(f)
        later = make_flow(addon, run, host=HOST, headers={"Authorization": f"Bearer {PH}"})
        through_request(addon, later)
    assert f.response.headers[REASON_HEADER] == "unexpected_value"
    if on_leak == "block":
        assert later.response is not None and later.response.status_code == 403
        assert later.response.headers[REASON_HEADER] == "unexpected_value"
        assert later.request.headers["Authorization"] == f"Bearer {PH}"  # nothing injected
    else:
        assert later.response is None
        assert later.request.headers["Authorization"] == f"Bearer {VALUE}"
