"""The addon's hooks with mitmproxy's own test tools (taddons, tflow): no sockets."""

from __future__ import annotations

import asyncio
import base64
import gzip
import inspect
import json
from types import SimpleNamespace

import pytest
from mitmproxy import connection, http
from mitmproxy.flow import Error
from mitmproxy.proxy import server_hooks
from mitmproxy.test import taddons, tflow

from proxy.addon import REASON_HEADER, Coatcheck, Tunnel, run_peername
from proxy.audit import Audit
from proxy.engine import DictValues, Engine
from proxy.flowstate import state_of
from proxy.runs import parse_run

VALUE = "real-secret-value-0123456789"
HOST = "api.example.test"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    values = DictValues({"TOKEN": VALUE})
    engine = Engine(values)
    run = parse_run(
        {
            "run_id": "r-addon1",
            "secrets": [
                {
                    "name": "TOKEN",
                    "placeholder": "ccph_" + "A" * 26,
                    "domains": [HOST],
                    "surfaces": ["header", "basic", "query", "body"],
                }
            ],
            "allow": ["open.example.test"],
        }
    )
    engine.register(run)
    rec = Recorder()
    addon = Coatcheck(engine, Audit(rec))  # type: ignore[arg-type]
    return addon, run, rec, values


def make_flow(
    addon,
    run,
    *,
    host=HOST,
    port=443,
    scheme="https",
    headers=(),
    path="/v1/x",
    method="GET",
    content=b"",
    host_header=None,
):  # type: ignore[no-untyped-def]
    f = tflow.tflow()
    f.client_conn.peername = run_peername(run.run_id)
    f.request = http.Request.make(method, f"{scheme}://{host}:{port}{path}", content, dict(headers))
    f.request.headers["host"] = host_header or host
    addon.tunnels[f.client_conn.id] = Tunnel(host, port, checked={(host, port): "203.0.113.7"})
    return f


def hook(addon, name, f):  # type: ignore[no-untyped-def]
    result = getattr(addon, name)(f)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def through_request(addon, f):  # type: ignore[no-untyped-def]
    hook(addon, "requestheaders", f)
    if f.response is None:
        hook(addon, "request", f)


PH = "ccph_" + "A" * 26


def test_header_is_swapped_on_tls_to_the_secret_domain(setup):
    addon, run, rec, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": f"Bearer {PH}"})
        through_request(addon, f)
    assert f.response is None
    assert f.request.headers["Authorization"] == f"Bearer {VALUE}"
    assert state_of(f.metadata).injected == ["TOKEN"]


def test_basic_auth_is_swapped_inside_base64(setup):
    addon, run, _, _ = setup
    token = base64.b64encode(f"user:{PH}".encode()).decode()
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": f"Basic {token}"})
        through_request(addon, f)
    decoded = base64.b64decode(f.request.headers["Authorization"].split()[1]).decode()
    assert decoded == f"user:{VALUE}"


def test_plain_http_never_gets_a_value(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, scheme="http", port=80, headers={"Authorization": PH})
        through_request(addon, f)
    assert f.request.headers["Authorization"] == PH


def test_host_header_mismatch_is_refused_with_reason(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": PH}, host_header="evil.test")
        through_request(addon, f)
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers[REASON_HEADER] == "host_mismatch"
    assert VALUE not in f.request.headers.get("Authorization", "")


def test_unknown_client_is_refused(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run)
        f.client_conn.peername = ("127.0.0.1", 5555)
        through_request(addon, f)
    assert f.response is not None and f.response.headers[REASON_HEADER] == "unknown_client"


def test_query_and_json_body_are_swapped_with_escaping(setup):
    addon, run, _, values = setup
    values.set("TOKEN", 'va"l\\ue&x')
    with taddons.context(addon):
        f = make_flow(
            addon,
            run,
            method="POST",
            path=f"/q?key={PH}",
            headers={"Content-Type": "application/json"},
            content=f'{{"t": "{PH}"}}'.encode(),
        )
        through_request(addon, f)
    assert f.request.path == "/q?key=va%22l%5Cue%26x"
    assert f.request.content == b'{"t": "va\\"l\\\\ue&x"}'
    assert f.request.headers["content-length"] == str(len(f.request.content))


def test_compressed_body_with_placeholder_is_refused(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(
            addon,
            run,
            method="POST",
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        f.request.raw_content = gzip.compress(PH.encode())
        through_request(addon, f)
    assert f.response is not None and f.response.status_code == 415
    assert f.response.headers[REASON_HEADER] == "compressed_body"


def test_placeholder_to_other_host_is_a_leak_event(setup):
    addon, run, rec, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, host="open.example.test", headers={"X-Token": PH})
        through_request(addon, f)
    assert f.request.headers["X-Token"] == PH
    assert any('"placeholder_leak"' in line and "TOKEN" in line for line in rec.lines)


def test_proxy_only_headers_are_stripped(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Proxy-Authorization": "Basic eDp5"})
        through_request(addon, f)
    assert "Proxy-Authorization" not in f.request.headers


def test_response_headers_and_streamed_body_are_scrubbed(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": f"Bearer {PH}"})  # carries a value
        through_request(addon, f)
        f.response = http.Response.make(200, b"", {"X-Echo": VALUE})
        del f.response.headers["content-length"]
        f.response.headers["transfer-encoding"] = "chunked"
        addon.responseheaders(f)
    assert f.response.headers["X-Echo"] == PH
    stream = f.response.stream
    assert callable(stream)
    half = len(VALUE) // 2
    parts = [*stream(b'{"a": "' + VALUE[:half].encode()), *stream(VALUE[half:].encode() + b'"}')]
    parts += stream(b"")
    assert all(parts), "an empty chunk would end a chunked body early"
    assert b"".join(parts) == f'{{"a": "{PH}"}}'.encode()


def test_audit_line_names_secrets_never_values(setup):
    addon, run, rec, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": PH})
        through_request(addon, f)
        f.response = http.Response.make(200, b"ok")
        addon.response(f)
    line = rec.lines[-1]
    assert '"secrets_injected": ["TOKEN"]' in line and VALUE not in line
    assert '"path": "/v1/x"' in line


def test_small_response_is_buffered_scrubbed_and_keeps_its_length(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run, headers={"Authorization": f"Bearer {PH}"})  # carries a value
        through_request(addon, f)
        body = f'{{"echo": "{VALUE}"}}'.encode()
        f.response = http.Response.make(200, body, {"Content-Type": "application/json"})
        addon.responseheaders(f)
        assert not f.response.stream
        addon.response(f)
    assert f.response.content == f'{{"echo": "{PH}"}}'.encode()
    assert f.response.headers["content-length"] == str(len(f.response.content))


def test_small_undecodable_response_is_refused(setup):
    addon, run, _, _ = setup
    with taddons.context(addon):
        f = make_flow(addon, run)
        through_request(addon, f)
        f.response = http.Response.make(200, b"", {"Content-Encoding": "gzip"})
        f.response.raw_content = b"not gzip at all " + VALUE.encode()
        f.response.headers["content-length"] = str(len(f.response.raw_content))
        addon.responseheaders(f)
        addon.response(f)
    assert f.response.status_code == 502
    assert VALUE.encode() not in (f.response.raw_content or b"")


# -- hooks fail closed and never raise -----------------------------------------------------------
class BrokenEngine(Engine):
    """An engine whose every look-up of a run fails, with a real value in the message."""

    def view(self, run_id):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"broken while holding {VALUE}")


class Exploding:
    """Any attribute read raises (a broken hook argument)."""

    def __getattr__(self, name: str) -> object:
        raise RuntimeError(f"no {name} near {VALUE}")


class ExplodingTunnels(dict):  # type: ignore[type-arg]
    def pop(self, *args):  # type: ignore[no-untyped-def]
        raise RuntimeError(VALUE)


@pytest.fixture
def broken(setup):  # type: ignore[no-untyped-def]
    """The addon with an engine that raises, and a run's flow."""
    _, run, _, _ = setup
    rec = Recorder()
    addon = Coatcheck(BrokenEngine(DictValues({"TOKEN": VALUE})), Audit(rec))  # type: ignore[arg-type]
    return addon, run, rec


def audit_lines(rec):  # type: ignore[no-untyped-def]
    assert all(VALUE not in line for line in rec.lines), "a value reached the audit log"
    return [json.loads(line) for line in rec.lines]


def internal_errors(rec):  # type: ignore[no-untyped-def]
    return [line for line in audit_lines(rec) if line["reason"] == "internal_error"]


def assert_refused(f, status):  # type: ignore[no-untyped-def]
    assert f.response is not None and f.response.status_code == status
    assert f.response.headers[REASON_HEADER] == "internal_error"
    assert VALUE.encode() not in (f.response.raw_content or b"")
    if callable(f.response.stream):  # replaced in place: the refusal is what streams out
        sent = b"".join([*f.response.stream(b"upstream body"), *f.response.stream(b"")])
        assert b"internal_error" in sent and b"upstream" not in sent


def assert_killed(f):  # type: ignore[no-untyped-def]
    assert f.error is not None and f.error.msg == Error.KILLED_MESSAGE


def buffered(f):  # type: ignore[no-untyped-def]
    f.response = http.Response.make(200, b"upstream body")
    return f


def streamed(f):  # type: ignore[no-untyped-def]
    buffered(f).response.stream = True
    return f


@pytest.mark.parametrize(
    ("hook", "prepare", "expect", "status"),
    [
        ("http_connect", None, "refused", 500),
        ("requestheaders", None, "refused", 500),
        ("request", None, "refused", 500),
        ("responseheaders", buffered, "refused", 502),
        ("response", buffered, "refused", 500),
        ("response", streamed, "killed", 0),
        ("error", lambda f: setattr(f, "error", Error("upstream said " + VALUE)), "killed", 0),
    ],
    ids=["http_connect", "requestheaders", "request", "responseheaders", "response-buffered",
         "response-streamed", "error"],
)  # fmt: skip
def test_flow_hook_fails_closed_and_audits(broken, hook, prepare, expect, status):
    addon, run, rec = broken
    with taddons.context(addon):
        f = make_flow(addon, run, method="CONNECT" if hook == "http_connect" else "GET")
        if prepare is not None:
            prepare(f)
        hook_fn = getattr(addon, hook)
        assert inspect.iscoroutinefunction(hook_fn) == (hook == "http_connect")
        call(addon, hook, f)  # raises nothing
    if expect == "refused":
        assert_refused(f, status)
    else:
        assert_killed(f)
    (line,) = internal_errors(rec)
    assert line["decision"] == "deny" and line["status"] == status
    assert line["host"] == HOST and line["path"] == "/v1/x"


def test_websocket_message_hook_fails_closed_and_audits(broken):
    addon, run, rec = broken
    with taddons.context(addon):
        f = tflow.tflow(resp=True, ws=True)
        f.client_conn.peername = run_peername(run.run_id)
        message = f.websocket.messages[-1]
        addon.websocket_message(f)
    assert message.dropped
    assert_killed(f)
    assert len(internal_errors(rec)) == 1


def test_a_refused_request_is_audited_once(broken):
    """The guard in requestheaders writes the line; the response hook that follows (which
    fails too) does not write another."""
    addon, run, rec = broken
    with taddons.context(addon):
        f = make_flow(addon, run)
        through_request(addon, f)
        addon.response(f)  # mitmproxy's next hook for a response an addon set
    assert_refused(f, 500)
    assert len(audit_lines(rec)) == 1


def call(addon, name, arg):  # type: ignore[no-untyped-def]
    result = getattr(addon, name)(arg)
    if inspect.iscoroutine(result):
        asyncio.run(result)


def client_of(run):  # type: ignore[no-untyped-def]
    client = tflow.tclient_conn()
    client.peername = run_peername(run.run_id)
    return client


def hook_data(hook, client):  # type: ignore[no-untyped-def]
    if hook == "tls_clienthello":  # the client is known, its hello is broken
        return SimpleNamespace(context=SimpleNamespace(client=client), client_hello=Exploding())
    if hook == "server_connect":  # the engine that picks the address is broken
        server = connection.Server(address=(HOST, 443))
        return server_hooks.ServerConnectionHookData(server=server, client=client)
    return server_hooks.ServerConnectionHookData(server=Exploding(), client=client)  # type: ignore[arg-type]


@pytest.mark.parametrize("hook", ["tls_clienthello", "server_connect", "server_connected"])
def test_connection_hook_fails_closed_and_audits(broken, hook):
    """Without a request to refuse, the connection's later requests are: its tunnel is marked
    with the refusal, and a server is not dialled."""
    addon, run, rec = broken
    with taddons.context(addon):
        f = make_flow(addon, run)
        data = hook_data(hook, f.client_conn)
        call(addon, hook, data)  # raises nothing
        addon.engine = Engine(DictValues({"TOKEN": VALUE}))  # the engine works again, but
        addon.engine.register(run)
        through_request(addon, f)  # the connection stays refused
    assert_refused(f, 500)
    if hook == "server_connect":
        assert data.server.error and VALUE not in data.server.error
    (line,) = internal_errors(rec)
    assert line["run_id"] == run.run_id and line["host"] == HOST and line["port"] == 443
    assert line["error"].startswith(hook) and line["status"] == 0


def test_client_disconnected_never_raises_and_audits(broken):
    addon, run, rec = broken
    addon.tunnels = ExplodingTunnels()
    addon.client_disconnected(client_of(run))
    (line,) = internal_errors(rec)
    assert line["status"] == 0 and "client_disconnected" in line["error"]


def test_an_unwritable_audit_log_never_raises(broken):
    """Failing closed must not depend on the audit: the flow is still refused."""
    addon, run, _ = broken

    class Full:
        def write(self, text: str) -> int:
            raise OSError("disk full")

        def flush(self) -> None:
            pass

    addon.audit = Audit(Full())  # type: ignore[arg-type]
    with taddons.context(addon):
        f = make_flow(addon, run)
        addon.requestheaders(f)
    assert_refused(f, 500)
