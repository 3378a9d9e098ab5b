"""The fake Messages API's HTTP side: TLS per connection, and writing an answer (a JSON body, or
an SSE stream in chunks, with the gates, cuts and error events a turn asks for).

It only talks HTTP; what to answer is ``FakeAnthropic.decide``'s business.
"""

from __future__ import annotations

import io
import json
import socket
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.support.fake_anthropic_script import (
    ERROR_STATUS,
    GATE_S,
    HttpError,
    error_json,
    sse,
)
from tests.support.http_body import read_body

if TYPE_CHECKING:
    from tests.support.fake_anthropic import FakeAnthropic, Recorded, Reply


class Server(ThreadingHTTPServer):
    """Accepts plain TCP and does the TLS handshake in the connection's own thread."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type[Any], ctx: ssl.SSLContext) -> None:
        super().__init__(addr, handler)
        self.ctx = ctx

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            tls.close()


class _Chunked:
    """A chunked HTTP body; with ``size``, in pieces of exactly that many bytes (so a piece can
    end inside a line, an event or a multi-byte UTF-8 character)."""

    def __init__(self, out: io.BufferedIOBase, size: int | None) -> None:
        self.out, self.size, self.held = out, size, b""

    def write(self, data: bytes) -> None:
        if self.size is None:
            self._chunk(data)
            return
        self.held += data
        while len(self.held) >= self.size:
            self._chunk(self.held[: self.size])
            self.held = self.held[self.size :]

    def flush(self) -> None:
        if self.held:
            self._chunk(self.held)
            self.held = b""

    def end(self) -> None:
        self.flush()
        self.out.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.out.write(b"%x\r\n%s\r\n" % (len(data), data))


def handler(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 120  # an idle keep-alive connection ends then

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            rec = fake.record(self.command, self.path, list(self.headers.items()), self._body())
            answer = fake.decide(rec)
            try:
                if isinstance(answer, HttpError):
                    self._error(rec, answer)
                elif rec.streaming:
                    self._stream(rec, answer)
                else:
                    self._message(rec, answer)
            except OSError:  # the client went away
                self.close_connection = True
            except Exception as exc:  # a bug of the fake: say so, loudly, and never retried
                rec.error = why = f"the fake Messages API crashed: {exc!r}"
                if rec.status:
                    self._cut()
                else:
                    self._error(
                        rec, HttpError(500, "api_error", why, (("x-should-retry", "false"),))
                    )

        do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

        def _body(self) -> bytes:
            return read_body(self)

        def _head(self, rec: Recorded, status: int, headers: dict[str, str]) -> None:
            rec.status = status
            self.send_response(status)
            for k, v in {**headers, "request-id": rec.request_id}.items():
                self.send_header(k, v)
            self.end_headers()

        def _error(self, rec: Recorded, err: HttpError) -> None:
            rec.error = err.message
            body = json.dumps(error_json(err.type, err.message, rec.request_id)).encode()
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            self._head(rec, err.status, {**headers, **dict(err.headers)})
            self.wfile.write(body)

        def _cut(self) -> None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _wait(self, rec: Recorded) -> bool:
            gate = rec.turn.gate if rec.turn else None
            if gate is None:
                return True
            gate.reached.set()
            return gate.released.wait(GATE_S)

        def _message(self, rec: Recorded, reply: Reply) -> None:
            turn = reply.turn
            if not self._wait(rec) or turn.drop_after is not None:
                self._cut()  # no answer at all: the client sees the connection close
                return
            if (ev := turn.error_event) is not None:
                self._error(rec, HttpError(ERROR_STATUS.get(ev.type, 500), ev.type, ev.message))
                return
            msg = reply.message()
            body = json.dumps(msg, ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
            self._head(rec, 200, headers)
            self.wfile.write(body)

        def _stream(self, rec: Recorded, reply: Reply) -> None:
            turn = reply.turn
            events = [sse(e) for e in reply.events()]
            drop, ev = turn.drop_after, turn.error_event
            if ev is not None and drop is not None and drop < ev.after:
                ev = None  # the cut comes first
            stop = min(
                [len(events), *(n for n in (drop, ev.after if ev else None) if n is not None)]
            )
            headers = {
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
            }
            self._head(rec, 200, headers)
            out = _Chunked(self.wfile, turn.write_size)
            gate_at = min(turn.gate.after, stop) if turn.gate else -1
            for i in range(stop + 1):
                if i == gate_at:
                    out.flush()
                    if not self._wait(rec):
                        self._cut()
                        return
                if i < stop:
                    out.write(events[i])
            if ev is not None:
                rec.error = ev.message
                out.write(sse(error_json(ev.type, ev.message, rec.request_id)))
            elif drop is not None:
                out.flush()
                self._cut()
                return
            out.end()

    return Handler
