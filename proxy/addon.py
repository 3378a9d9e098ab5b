"""The mitmproxy addon: wires the pure core to mitmproxy's hooks (proxy.mitm starts mitmproxy).

A connection's run is known from its synthetic peer name (:mod:`proxy.identity`). A request's
state across hooks is one :class:`~proxy.flowstate.FlowState`; how it is handled is a
:class:`~proxy.plan.RequestPlan`, which this module only applies.

Hooks fail closed and never raise (:mod:`proxy.guard`): a refusal is a response with a reason.
An exception in a hook refuses the request with ``internal_error`` where a response can still
be set, else kills the flow (or marks the connection refused), and writes an audit line.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from proxy import audit as audit_mod
from proxy import channels, plan, responses, rewrite
from proxy.engine import Engine
from proxy.flowstate import FlowState, state_of
from proxy.guard import guarded, internal_error
from proxy.identity import run_id_of
from proxy.identity import run_peername as run_peername  # the tests' and proxy.mitm's name
from proxy.leaks import StreamLeakScanner
from proxy.policy import Decision, deny
from proxy.reasons import Reason
from proxy.runs import RunPolicy
from proxy.scrub import scrub_bytes
from proxy.tunnels import Tunnel, bind, norm, refuse_connection, sni_refusal

REASON_HEADER = "X-Coatcheck-Reason"


def refusal(decision: Decision, status: int = 0) -> http.Response:
    """The response refusing a request; 403 unless ``status`` (500 for an internal error)."""
    status = status or (500 if decision.reason == Reason.INTERNAL_ERROR else 403)
    body = f"coatcheck refused this request ({decision.reason}): {decision.detail}\n"
    headers = {REASON_HEADER: decision.reason, "Content-Type": "text/plain", "Connection": "close"}
    return http.Response.make(status, body, headers)


def kill(flow: http.HTTPFlow) -> None:
    """Stop a flow whose response can no longer be replaced (and drop its WebSocket message)."""
    with contextlib.suppress(Exception):
        if flow.websocket is not None and flow.websocket.messages:
            flow.websocket.messages[-1].drop()
    with contextlib.suppress(Exception):
        if flow.killable:
            flow.kill()


class Coatcheck:
    def __init__(self, engine: Engine, audit: audit_mod.Audit) -> None:
        self.engine = engine
        self.audit = audit
        self.tunnels: dict[str, Tunnel] = {}

    # -- failing closed ---------------------------------------------------------------
    def _failed(self, flow: http.HTTPFlow, hook: str, exc: Exception) -> None:
        """After ``exc`` in a flow hook: refuse, or kill when too late to; audit. Never raises."""
        decision, status = internal_error(hook, exc), 0
        try:
            state_of(flow.metadata).decision = decision
            resp, late = flow.response, hook in ("error", "websocket_message")
            if late or (hook == "response" and resp is not None and resp.stream):
                kill(flow)
            elif hook == "responseheaders" and resp is not None:
                status = 502
                self._fail_response(flow, decision, status)
            else:
                status = 500
                self._refuse(flow, decision, status)
        except Exception:
            kill(flow)
        with contextlib.suppress(Exception):
            run = state_of(flow.metadata).run
            self.audit.request(flow, run, decision, status=status, once=True)

    def _conn_failed(self, data: Any, hook: str, exc: Exception) -> None:
        """After ``exc`` in a connection hook: the server is not dialled, the client's later
        requests are refused (its tunnel is marked); audit. Never raises."""
        decision, run_id, tunnel = internal_error(hook, exc), None, None
        with contextlib.suppress(Exception):
            if hook == "server_connect":
                data.server.error = f"coatcheck: {type(exc).__name__}"
        with contextlib.suppress(Exception):
            client = data if isinstance(data, connection.Client) else getattr(data, "client", None)
            client = client or data.context.client  # tls_clienthello
            run_id, tunnel = run_id_of(client.peername), self.tunnels.get(client.id)
            if hook != "client_disconnected":
                tunnel = refuse_connection(self.tunnels, client.id, decision)
        with contextlib.suppress(Exception):
            host, port = (tunnel.host or None, tunnel.port) if tunnel else (None, None)
            self.audit.failure(run_id, decision, host=host, port=port)

    def _refuse(self, flow: http.HTTPFlow, decision: Decision, status: int = 0) -> None:
        state_of(flow.metadata).decision = decision
        flow.response = refusal(decision, status)

    def _state(self, flow: http.HTTPFlow, *, fresh: bool = False) -> FlowState:
        """The request's state, with the run's view: taken once (one vault ``stat``)."""
        state = state_of(flow.metadata)
        if fresh or state.view is None:
            state.view = self.engine.view(run_id_of(flow.client_conn.peername))
        return state

    # -- connections ------------------------------------------------------------------
    @guarded(_conn_failed)
    def client_disconnected(self, client: connection.Client) -> None:
        self.tunnels.pop(client.id, None)

    @guarded(_failed)
    async def http_connect(self, flow: http.HTTPFlow) -> None:
        state, (host, port) = self._state(flow), (flow.request.host, flow.request.port)
        tunnel, state.decision = await self.engine.open_tunnel(state.run, host, port)
        if tunnel is not None:
            self.tunnels[flow.client_conn.id] = tunnel
        if not state.decision.allowed:
            self._refuse(flow, state.decision)
            self.audit.request(flow, state.run, state.decision, status=403)

    @guarded(_conn_failed)
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        tunnel = self.tunnels.get(data.context.client.id)
        if tunnel is not None:
            tunnel.refused = sni_refusal(tunnel, data.client_hello.sni) or tunnel.refused

    @guarded(_conn_failed)
    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Dial the address that was checked, never a fresh DNS answer."""
        if data.server.address is None:
            data.server.error = "coatcheck: no destination"
            return
        host, port = data.server.address
        run = self.engine.run(run_id_of(data.client.peername))
        tunnel = self.tunnels.get(data.client.id)
        address, error = await self.engine.dial_address(run, tunnel, norm(host), port)
        if address is None:
            data.server.error = error
            return
        data.server.sni = norm(host)
        data.server.address = (address, port)

    @guarded(_conn_failed)
    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Label the open connection with the name again, so mitmproxy reuses it for requests
        to that name (it matches connections by address). The dialled IP stays in peername."""
        if data.server.sni and data.server.address:
            address = (str(data.server.sni), data.server.address[1])
            object.__setattr__(data.server, "address", address)

    # -- requests ---------------------------------------------------------------------
    @guarded(_failed)
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT" or flow.response:
            return
        state_of(flow.metadata).start = time.monotonic()
        state, req = self._state(flow, fresh=True), flow.request
        view, claims = state.view, (req.headers.get_all("host"), req.authority or None)
        tunnel, decision = bind(
            self.tunnels, flow.client_conn.id, view, (req.host, req.port), *claims
        )
        if tunnel is not None:
            state.dest = (tunnel.host, tunnel.port)  # the audit names the real one
        if not decision.allowed or view is None or tunnel is None:
            return self._refuse(flow, decision)
        state.decision, run = decision, view.run
        if (refused := channels.request_refusal(req.headers.fields)) is not None:
            return self._refuse(flow, *refused)
        where, tls = (tunnel.host, tunnel.port, req.method, req.path), req.scheme == "https"
        secrets = view.injectable(*where, tls=tls, fields=req.headers.fields)
        swaps, scanner = view.swaps(secrets), view.leak_scanner(secrets)
        # Headers and query are rewritten here: with a streamed body they leave right after.
        out = rewrite.rewrite_head(req.headers.fields, req.path, swaps, scanner)
        out.fields = view.after_injection(req.headers.fields, out, swaps)
        length = req.headers.get("content-length")
        how = plan.plan_request(
            run, secrets, http_version=req.http_version, content_length=length, head_leaks=out.leaks
        )
        self._leaked(flow, run, out.leaks)
        if how.refusal is not None:
            return self._refuse(flow, how.refusal, how.status)
        if out.fields is not req.headers.fields:
            req.headers.fields = out.fields
        if out.path is not req.path:
            req.path = out.path
        state.secrets, state.swaps, state.scanner, state.out = secrets, swaps, scanner, out
        state.injected, state.forwarded = sorted(out.injected), how.body is plan.BodyMode.STREAM
        if how.body is plan.BodyMode.STREAM:  # (forwarded: the head leaves now)
            state.body_scanner = StreamLeakScanner(scanner)
            req.stream = plan.reporting_stream(state.body_scanner)

    def _leaked(self, flow: http.HTTPFlow, run: RunPolicy, leaks: set[str]) -> Decision | None:
        """Audit a leak signal; the refusal when the run blocks leaks."""
        if not leaks:
            return None
        names = sorted(leaks)
        state_of(flow.metadata).leaks.extend(names)
        self.audit.leak(flow, run, names)
        return plan.leak_refusal(run, leaks)

    @guarded(_failed)
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT" or flow.response:
            return None
        state, req = self._state(flow), flow.request
        run, out, scanner = state.run, state.out, state.scanner
        if run is None or out is None or scanner is None:
            return self._refuse(flow, deny(Reason.UNCHECKED_REQUEST, "request was not checked"))
        if state.body_scanner is not None:  # already forwarded; the scan can only report
            refused = self._leaked(flow, run, state.body_scanner.found)
            return self._refuse(flow, refused) if refused is not None else None
        if not req.raw_content:
            state.forwarded = True
            return None
        before = set(out.leaks)
        content_type = req.headers.get("content-type", "")
        encoding = req.headers.get("content-encoding", "")
        rewrite.rewrite_body(out, req.raw_content, content_type, encoding, state.swaps, scanner)
        problem, status = self._leaked(flow, run, out.leaks - before), 403
        if problem is None:
            problem, status = out.problem, out.status
        if problem is not None:
            return self._refuse(flow, problem, status)
        if out.body is not None:
            req.raw_content = out.body
            if "content-length" in req.headers:
                req.headers["content-length"] = str(len(out.body))
        state.injected, state.forwarded = sorted(out.injected), True

    # -- responses --------------------------------------------------------------------
    @guarded(_failed)
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state, resp = self._state(flow), flow.response
        view = state.view
        if resp is None or view is None or flow.request.method == "CONNECT":
            return
        if (refused := channels.response_refusal(resp, state.injected)) is not None:
            return self._fail_response(flow, refused)

        def abort(why: Decision) -> None:  # undecodable midway, or an unexpected value
            state.decision = view.noted(why)
            kill(flow)

        injected, method = bool(state.injected), flow.request.method
        how = plan.plan_response(method, resp, view.scrub_pairs, abort, injected=injected)
        if how.fields is not resp.headers.fields:
            resp.headers.fields = how.fields
        resp.reason = how.reason
        if how.refusal is not None:
            return self._fail_response(flow, view.noted(how.refusal))
        # A small body is scrubbed whole in `response`, keeping Content-Length (fewer writes).
        state.scrub_body = how.mode is plan.ResponseMode.BUFFER and bool(view.scrub_pairs)
        if how.mode in (plan.ResponseMode.STREAM, plan.ResponseMode.SCRUB):
            resp.stream = how.stream or True

    def _fail_response(self, flow: http.HTTPFlow, decision: Decision, status: int = 502) -> None:
        """Turn the upstream's response into a refusal in place: its body is read and dropped
        (a new ``flow.response`` set here would still stream the upstream body after it)."""
        made, resp = refusal(decision, status), flow.response
        if resp is not None:
            state_of(flow.metadata).decision = decision
            resp.status_code, resp.reason = made.status_code, made.reason
            resp.headers = made.headers.copy()
            resp.headers["content-length"] = str(len(made.raw_content or b""))
            resp.stream = responses.replacement_stream(made.raw_content or b"")

    @guarded(_failed)
    def response(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT":
            return
        state, resp = self._state(flow), flow.response
        view = state.view
        if view is not None and (ended := channels.after_body(flow, view.scrub_pairs)):
            self._refuse(flow, ended, 502)  # a 101 to raw TCP; trailers are scrubbed in place
        if state.scrub_body and resp is not None and view is not None:
            injected = bool(state.injected)
            scrubbed, refused = responses.check_body(resp, view.scrub_pairs, injected=injected)
            if refused is not None:
                self._refuse(flow, view.noted(refused), 502)
            elif scrubbed is not None:
                resp.content = scrubbed
        status = flow.response.status_code if flow.response else 0
        # once: when a guard refused this request, it wrote the line already
        self.audit.request(flow, state.run, state.decision, status=status, once=True)

    @guarded(_failed)
    def error(self, flow: http.HTTPFlow) -> None:
        """A protocol error. mitmproxy's 502 page quotes its message, which may quote the
        upstream: if that holds a real value, the connection is killed instead."""
        if flow.request.method == "CONNECT":
            return
        state, message = self._state(flow), flow.error.msg if flow.error else "error"
        state.forwarded &= flow.server_conn.timestamp_tls_setup is not None  # (else never left)
        pairs = state.view.scrub_pairs if state.view else ()
        scrubbed = responses.scrub_reason(message, pairs) if pairs else message
        if scrubbed != message:
            kill(flow)
        self.audit.request(flow, state.run, state.decision, status=0, error=scrubbed)

    @guarded(_failed)
    def websocket_message(self, flow: http.HTTPFlow) -> None:
        state = self._state(flow, fresh=True)
        view = state.view
        if view is None or flow.websocket is None:
            return
        message = flow.websocket.messages[-1]
        if not message.from_client:
            if view.scrub_pairs:
                message.content = scrub_bytes(message.content, view.scrub_pairs)
            return
        leaks = view.leak_scanner(state.secrets).scan(message.content)
        if self._leaked(flow, view.run, leaks) is not None:
            message.drop()
