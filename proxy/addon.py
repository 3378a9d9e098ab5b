"""The mitmproxy addon: wires the pure core to mitmproxy's hooks. The only mitmproxy import.

Identity: sandboxes reach the proxy through a per-run Unix socket; the service hands each
accepted stream to mitmproxy with a synthetic peer name ``("run:<id>", n)``. Nothing a sandbox
sends can change that name, so the run is known without trusting the client. Connections on the
loopback TCP listener have an ordinary peer name and belong to no run: they are refused.

Hooks fail closed and never raise: a refusal is a response with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import connection, ctx, http, options, tls
from mitmproxy.addons import core, disable_h2c, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.proxy import server_hooks

from proxy import audit as audit_mod
from proxy import responses, rewrite
from proxy.decoders import DecodeError
from proxy.engine import Engine, RunView
from proxy.leaks import StreamLeakScanner
from proxy.policy import Decision, decide_destination, deny
from proxy.runs import RunPolicy
from proxy.scrub import scrub_bytes
from proxy.tunnels import Tunnel, check_request, norm

RUN_PEER = "run:"
REASON_HEADER = "X-Coatcheck-Reason"
HTTP_VERSIONS = frozenset(("HTTP/1.0", "HTTP/1.1", "HTTP/2.0"))
_seq = itertools.count(1)


def run_peername(run_id: str) -> tuple[str, int]:
    return (RUN_PEER + run_id, next(_seq) % 65536)


def run_id_of(client: connection.Client) -> str | None:
    peer = client.peername
    if peer and isinstance(peer[0], str) and peer[0].startswith(RUN_PEER):
        return peer[0][len(RUN_PEER) :]
    return None


def refusal(decision: Decision, status: int = 403) -> http.Response:
    body = f"coatcheck refused this request ({decision.reason}): {decision.detail}\n"
    return http.Response.make(
        status,
        body,
        {REASON_HEADER: decision.reason, "Content-Type": "text/plain", "Connection": "close"},
    )


class Coatcheck:
    def __init__(self, engine: Engine, audit: audit_mod.Audit) -> None:
        self.engine = engine
        self.audit = audit
        self.tunnels: dict[str, Tunnel] = {}

    # -- connections ------------------------------------------------------------------
    def client_disconnected(self, client: connection.Client) -> None:
        self.tunnels.pop(client.id, None)

    def _view(self, flow: http.HTTPFlow, *, fresh: bool = False) -> RunView | None:
        """The run's view for this request: taken once (one vault ``stat``), then reused."""
        view = None if fresh else flow.metadata.get("cc_view")
        if view is None:
            view = self.engine.view(run_id_of(flow.client_conn))
            flow.metadata["cc_view"] = view
        return view

    def _run(self, flow: http.HTTPFlow) -> RunPolicy | None:
        view = self._view(flow)
        return view.run if view is not None else None

    def _refuse(self, flow: http.HTTPFlow, decision: Decision, status: int = 403) -> None:
        flow.metadata["cc_decision"] = decision
        flow.response = refusal(decision, status)

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        try:
            run = self._run(flow)
            host, port = flow.request.host, flow.request.port
            decision = decide_destination(run, host, port)
            if decision.allowed and run is not None:
                host = norm(host)
                tunnel = Tunnel(host, port)
                self.tunnels[flow.client_conn.id] = tunnel
                if await self.engine.check_tunnel(run, tunnel, host, port):
                    flow.metadata["cc_decision"] = decision
                    return
                decision = tunnel.refused or deny("address_refused", "address refused")
            self._refuse(flow, decision)
            self.audit.request(flow, run, decision, status=403)
        except Exception as exc:  # a hook never raises: fail closed
            self._refuse(flow, deny("internal_error", type(exc).__name__), 500)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        tunnel = self.tunnels.get(data.context.client.id)
        sni = data.client_hello.sni
        if tunnel is not None and sni and norm(sni) != tunnel.host:
            tunnel.refused = deny(
                "sni_mismatch", f"TLS SNI {sni!r} differs from the CONNECT target {tunnel.host}"
            )

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Dial the address that was checked, never a fresh DNS answer."""
        try:
            if data.server.address is None:
                data.server.error = "coatcheck: no destination"
                return
            host, port = data.server.address
            run = self.engine.run(run_id_of(data.client))
            tunnel = self.tunnels.get(data.client.id)
            address, error = await self.engine.dial_address(run, tunnel, norm(host), port)
            if address is None:
                data.server.error = error
                return
            data.server.sni = norm(host)
            data.server.address = (address, port)
        except Exception as exc:
            data.server.error = f"coatcheck: {type(exc).__name__}"

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        # Label the open connection with the name again, so mitmproxy reuses it for requests to
        # that name (it matches connections by address). The dialled IP stays in peername.
        if data.server.sni and data.server.address:
            object.__setattr__(
                data.server, "address", (str(data.server.sni), data.server.address[1])
            )

    # -- requests ---------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT" or flow.response:
            return
        flow.metadata["cc_start"] = time.monotonic()
        try:
            self._requestheaders(flow)
        except Exception as exc:
            self._refuse(flow, deny("internal_error", type(exc).__name__), 500)

    def _requestheaders(self, flow: http.HTTPFlow) -> None:
        view = self._view(flow, fresh=True)
        run = view.run if view is not None else None
        req = flow.request
        tunnel = self.tunnels.get(flow.client_conn.id)
        if tunnel is None:  # plain HTTP in absolute form: the target is the destination
            dest = decide_destination(run, req.host, req.port)
            if not dest.allowed or run is None:
                return self._refuse(flow, dest)
            tunnel = Tunnel(norm(req.host), req.port, plain=True)
            self.tunnels[flow.client_conn.id] = tunnel
        flow.metadata["cc_dest"] = (tunnel.host, tunnel.port)  # the audit names the real one
        if run is None or view is None:
            return self._refuse(flow, deny("unknown_client", "no run"))
        if req.http_version not in HTTP_VERSIONS:
            return self._refuse(
                flow,
                deny("bad_request_line", f"unsupported HTTP version {req.http_version!r}"),
                400,
            )
        decision = check_request(
            view.destination,
            tunnel,
            (req.host, req.port),
            req.headers.get_all("host"),
            req.authority or None,
        )
        if not decision.allowed:
            return self._refuse(flow, decision)
        flow.metadata["cc_decision"] = decision
        secrets = view.injectable(
            tunnel.host, tunnel.port, req.method, req.path, tls=req.scheme == "https"
        )
        flow.metadata["cc_secrets"] = secrets
        swaps = view.swaps(secrets)
        scanner = view.leak_scanner(secrets)
        # Headers and query are rewritten here: with a streamed body they leave right after.
        out = rewrite.rewrite_head(req.headers.fields, req.path, swaps, scanner)
        if self._leaked(flow, run, out.leaks):
            return None
        if out.fields is not req.headers.fields:
            req.headers.fields = out.fields
        if out.path is not req.path:
            req.path = out.path
        flow.metadata["cc_injected"] = sorted(out.injected)
        flow.metadata["cc_out"] = (out, swaps, scanner)
        needs_body = any("body" in s.surfaces for s in secrets) or run.on_leak == "block"
        declared = req.headers.get("content-length", "")
        if needs_body and declared.isdigit() and int(declared) > rewrite.MAX_INSPECT_BYTES:
            return self._refuse(flow, rewrite.too_large(), 413)
        if not needs_body:
            body_scanner = StreamLeakScanner(scanner)
            flow.metadata["cc_body_scanner"] = body_scanner

            def scan(chunk: bytes) -> bytes:
                body_scanner.feed(chunk)
                return chunk

            flow.request.stream = scan
        return None

    def _leaked(self, flow: http.HTTPFlow, run: RunPolicy, leaks: set[str]) -> bool:
        """Audit a leak signal; True when the request was refused for it."""
        if not leaks:
            return False
        flow.metadata.setdefault("cc_leaks", []).extend(sorted(leaks))
        self.audit.leak(flow, run, sorted(leaks))
        if run.on_leak != "block":
            return False
        self._refuse(
            flow,
            deny(
                "placeholder_leak",
                "a placeholder was on its way to a host outside its secret's domains",
            ),
        )
        return True

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT" or flow.response:
            return
        try:
            self._request(flow)
        except Exception as exc:
            self._refuse(flow, deny("internal_error", type(exc).__name__), 500)

    def _request(self, flow: http.HTTPFlow) -> None:
        run = self._run(flow)
        if run is None or "cc_out" not in flow.metadata:
            return self._refuse(flow, deny("unchecked_request", "request was not checked"))
        streamed = flow.metadata.get("cc_body_scanner")
        if streamed is not None:  # already forwarded; the scan can only report
            self._leaked(flow, run, streamed.found)
            return None
        req = flow.request
        out, swaps, scanner = flow.metadata["cc_out"]
        if not req.raw_content:
            return None
        before = set(out.leaks)
        rewrite.rewrite_body(
            out,
            req.raw_content,
            req.headers.get("content-type", ""),
            req.headers.get("content-encoding", ""),
            swaps,
            scanner,
        )
        if self._leaked(flow, run, out.leaks - before):
            return None
        if out.problem is not None:
            return self._refuse(flow, out.problem, out.status)
        if out.body is not None:
            req.raw_content = out.body
            if "content-length" in req.headers:
                req.headers["content-length"] = str(len(out.body))
        flow.metadata["cc_injected"] = sorted(out.injected)
        return None

    # -- responses --------------------------------------------------------------------
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        try:
            self._responseheaders(flow)
        except Exception as exc:
            self._fail_response(flow, deny("internal_error", type(exc).__name__))

    def _responseheaders(self, flow: http.HTTPFlow) -> None:
        view = self._view(flow)
        resp = flow.response
        if resp is None or view is None or flow.request.method == "CONNECT":
            return
        pairs = view.scrub_pairs
        if pairs:
            fields = responses.scrub_fields(resp.headers.fields, pairs)
            if fields is not resp.headers.fields:
                resp.headers.fields = fields
            resp.reason = responses.scrub_reason(resp.reason, pairs)
        bodiless = flow.request.method == "HEAD" or resp.status_code in (101, 204, 304)
        if bodiless or resp.status_code < 200:
            return
        if responses.small_enough_to_buffer(resp.headers):
            # Scrubbed whole in `response`, keeping Content-Length: fewer writes per request.
            flow.metadata["cc_scrub_body"] = bool(pairs)
            return
        if not pairs:
            resp.stream = True
            return

        def abort(exc: DecodeError) -> None:
            flow.metadata["cc_decision"] = deny("undecodable_response", str(exc))
            if flow.killable:
                flow.kill()

        try:
            encoding = resp.headers.get("content-encoding", "")
            stream, decoded = responses.body_stream(pairs, encoding, abort)
        except DecodeError as exc:
            return self._fail_response(flow, deny("undecodable_response", str(exc)))
        if decoded:
            del resp.headers["content-encoding"]
        if "content-length" in resp.headers:
            del resp.headers["content-length"]
            if resp.http_version == "HTTP/1.1":
                resp.headers["transfer-encoding"] = "chunked"
        resp.stream = stream

    def _fail_response(self, flow: http.HTTPFlow, decision: Decision, status: int = 502) -> None:
        """Turn the upstream's response into a refusal in place: its body is read and dropped.

        (Assigning a new ``flow.response`` here would still stream the upstream body after it.)
        """
        resp = flow.response
        if resp is None:
            return
        made = refusal(decision, status)
        flow.metadata["cc_decision"] = decision
        resp.status_code, resp.reason = made.status_code, made.reason
        resp.headers = made.headers.copy()
        resp.headers["content-length"] = str(len(made.raw_content or b""))
        resp.stream = responses.replacement_stream(made.raw_content or b"")

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT":
            return
        view = self._view(flow)
        if flow.metadata.get("cc_scrub_body") and flow.response is not None and view is not None:
            try:
                scrubbed = responses.scrub_body(flow.response, view.scrub_pairs)
            except ValueError:
                decision = deny("undecodable_response", "the response body can't be decoded")
                self._refuse(flow, decision, 502)
            else:
                if scrubbed is not None:
                    flow.response.content = scrubbed
        status = flow.response.status_code if flow.response else 0
        self.audit.request(flow, self._run(flow), flow.metadata.get("cc_decision"), status=status)

    def error(self, flow: http.HTTPFlow) -> None:
        """A protocol error. mitmproxy puts its message (which may quote what a hostile
        upstream sent) into the 502 page for the client: if it holds a real value, the
        connection is killed instead, and the audit line gets the scrubbed message."""
        if flow.request.method == "CONNECT":
            return
        view = self._view(flow)
        message = flow.error.msg if flow.error else "error"
        if view is not None and view.scrub_pairs:
            scrubbed = responses.scrub_reason(message, view.scrub_pairs)
            if scrubbed != message:
                message = scrubbed
                if flow.killable:
                    flow.kill()
        self.audit.request(
            flow,
            view.run if view is not None else None,
            flow.metadata.get("cc_decision"),
            status=0,
            error=message,
        )

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        view = self._view(flow, fresh=True)
        if view is None or flow.websocket is None:
            return
        run = view.run
        message = flow.websocket.messages[-1]
        if not message.from_client:
            if view.scrub_pairs:
                message.content = scrub_bytes(message.content, view.scrub_pairs)
            return
        leaks = view.leak_scanner(flow.metadata.get("cc_secrets", ())).scan(message.content)
        if leaks:
            self.audit.leak(flow, run, sorted(leaks))
            if run.on_leak == "block":
                message.drop()


# -- running mitmproxy ---------------------------------------------------------------------
StreamHandler = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Any]


class _RunWriter:
    """A StreamWriter that reports a run's synthetic peer name to mitmproxy."""

    def __init__(self, writer: asyncio.StreamWriter, peer: tuple[str, int]) -> None:
        self._writer = writer
        self._peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "sockname":
            return ("127.0.0.1", 0)
        return self._writer.get_extra_info(name, default)

    # The calls mitmproxy makes per write, passed straight through (no __getattr__ lookup).
    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _Running:
    def __init__(self, on_running: Callable[[StreamHandler], Any]) -> None:
        self.on_running = on_running

    async def running(self) -> None:
        proxyserver = ctx.master.addons.get("proxyserver")
        instance = next(iter(proxyserver.servers))

        async def handle(run_id: str, reader: asyncio.StreamReader, writer: Any) -> None:
            await instance.handle_stream(reader, _RunWriter(writer, run_peername(run_id)))

        result = self.on_running(handle)
        if asyncio.iscoroutine(result):
            await result


def configure(master: Master, confdir: str, upstream_ca: str | None) -> None:
    master.options.update(
        mode=["regular@127.0.0.1:0"],
        confdir=confdir,
        connection_strategy="lazy",
        ssl_insecure=False,
        http2=True,
        ssl_verify_upstream_trusted_ca=upstream_ca,
    )


async def serve(
    engine: Engine,
    audit: audit_mod.Audit,
    *,
    confdir: str,
    upstream_ca: str | None,
    on_running: Callable[[StreamHandler], Any],
    ready: Callable[[Callable[[], None], Callable[[str], None]], None],
) -> None:
    """Run mitmproxy with the coatcheck addon until shut down."""
    logging.getLogger("mitmproxy").setLevel(logging.WARNING)
    master = Master(options.Options(), with_termlog=False)
    # Only what an intercepting explicit proxy needs: no onboarding app, no map/modify/replay
    # features, no scripts. Fewer addons is less attack surface and less work per request.
    master.addons.add(
        core.Core(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        disable_h2c.DisableH2C(),
    )
    master.addons.add(Coatcheck(engine, audit), _Running(on_running))
    configure(master, confdir, upstream_ca)

    def set_ca(path: str) -> None:
        master.options.update(ssl_verify_upstream_trusted_ca=path)

    ready(master.shutdown, set_ca)
    await master.run()
