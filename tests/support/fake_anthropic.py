"""A fake Anthropic Messages API: a local TLS server that replays scripted turns in the real wire
format (JSON, or SSE with ``stream: true``) and records every request.

Start it with a trustme CA; its certificate names ``api.anthropic.com`` and ``127.0.0.1``.
A test talks to it straight, or as ``api.anthropic.com`` through the proxy (the run
registered with ``resolve={"api.anthropic.com": "127.0.0.1"}``, the proxy started with
``--upstream-ca`` for the CA)::

    with FakeAnthropic.start(test_ca, api_key=REAL_KEY) as fake:
        fake.enqueue(Turn.tool("bash", {"command": "ls"}), "done")
        client = sdk_client(fake.url, test_ca, api_key=REAL_KEY)  # the real SDK
        # or: sdk_client(fake.url_as(), proxy.ca_cert, api_key=PLACEHOLDER, proxy=run.proxy_url)
        ...
        assert fake.keys_seen() == [REAL_KEY, REAL_KEY]
        assert fake.requests[1].body["messages"][-1]["content"][0]["type"] == "tool_result"

Like the real API it answers 401 ``authentication_error`` to a wrong key (``x-api-key`` or
``Authorization: Bearer``), 400 ``invalid_request_error`` to a request it would refuse
(``fake_anthropic_rules.check``: a ``tool_result`` for a ``tool_use`` it never issued, a
``thinking`` block whose signature it never gave, ...), and, when the script has run out, a 500
``api_error`` saying so (with ``x-should-retry: false``, so the test fails at once instead of
retrying). A refused request uses no turn. Turns and their knobs are in
``fake_anthropic_script``; running the real Claude Code CLI against it, in ``fake_anthropic_cc``.
"""

from __future__ import annotations

import hmac
import itertools
import json
import ssl
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import trustme

from tests.support.fake_anthropic_http import Server, handler
from tests.support.fake_anthropic_rules import CacheBook, check
from tests.support.fake_anthropic_script import (
    Block,
    HttpError,
    RedactedThinking,
    Thinking,
    ToolUse,
    Turn,
    message_json,
    stream_events,
)

if TYPE_CHECKING:
    import anthropic

API_HOST = "api.anthropic.com"


@dataclass
class Recorded:
    """One request the fake got, in arrival order, and how it answered."""

    index: int
    method: str
    path: str  # with the query
    headers: list[tuple[str, str]]
    raw: bytes
    body: Any = None  # the parsed JSON body (None when it is not JSON)
    status: int = 0
    error: str | None = None  # the message of an error answer
    turn: Turn | None = None  # the scripted turn it used
    request_id: str = ""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def api_key(self) -> str | None:
        """The key it presented: ``x-api-key``, else the ``Authorization: Bearer`` token."""
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        return self.header("x-api-key") or (token if scheme.lower() == "bearer" else None)

    @property
    def betas(self) -> list[str]:
        values = [v for k, v in self.headers if k.lower() == "anthropic-beta"]
        return [b.strip() for v in values for b in v.split(",") if b.strip()]

    @property
    def beta(self) -> bool:
        """Sent to ``/v1/messages?beta=true``."""
        return parse_qs(urlsplit(self.path).query).get("beta") == ["true"]

    @property
    def streaming(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("stream") is True


@dataclass(frozen=True)
class Reply:
    turn: Turn
    message_id: str
    model: str
    usage: dict[str, int]

    def message(self) -> dict[str, Any]:
        """The JSON body of a non-streaming answer."""
        return message_json(
            self.turn, message_id=self.message_id, model=self.model, usage=self.usage
        )

    def events(self) -> list[dict[str, Any]]:
        """The events of a streamed answer."""
        return stream_events(
            self.turn, message_id=self.message_id, model=self.model, usage=self.usage
        )


class FakeAnthropic:
    def __init__(
        self, ca: trustme.CA, *, api_key: str, names: tuple[str, ...] = (API_HOST, "127.0.0.1")
    ) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.issued: dict[str, str] = {}  # tool_use id -> tool name, as sent
        self.signed: set[str] = set()  # thinking signatures and redacted data, as sent
        self.cache = CacheBook()
        self._script: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(ctx)
        self._server = Server(("127.0.0.1", 0), handler(self), ctx)
        self.port: int = self._server.server_address[1]

    @classmethod
    def start(cls, ca: trustme.CA, *, api_key: str) -> FakeAnthropic:
        fake = cls(ca, api_key=api_key)
        threading.Thread(target=fake._server.serve_forever, args=(0.02,), daemon=True).start()
        return fake

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeAnthropic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """Its address for a client that connects straight to it."""
        return f"https://127.0.0.1:{self.port}"

    def url_as(self, host: str = API_HOST) -> str:
        """Its address under ``host``, for a client behind a proxy that resolves ``host`` here."""
        return f"https://{host}:{self.port}"

    # -- the script ----------------------------------------------------------------------
    def enqueue(self, *turns: Turn | str) -> list[Turn]:
        """Add answers for the next requests, in order (a str is a text reply). Returns the
        turns as they will be sent, each ``tool_use`` with the id the fake gave it."""
        with self._lock:
            made = [self._with_ids(Turn.text(t) if isinstance(t, str) else t) for t in turns]
            self._script.extend(made)
        return made

    def clear(self) -> None:
        """Drop what is left of the script (a test that stopped early leaves turns behind)."""
        with self._lock:
            self._script.clear()

    @property
    def pending(self) -> int:
        return len(self._script)

    def keys_seen(self) -> list[str | None]:
        return [r.api_key for r in list(self.requests)]

    def answered(self) -> list[Recorded]:
        """The requests that used a scripted turn."""
        return [r for r in list(self.requests) if r.turn is not None]

    def _with_ids(self, turn: Turn) -> Turn:
        blocks = tuple(
            replace(b, id=f"toolu_01fake{next(self._ids):012d}")
            if isinstance(b, ToolUse) and b.id is None
            else b
            for b in turn.blocks
        )
        return replace(turn, blocks=blocks)

    # -- answering -----------------------------------------------------------------------
    def record(
        self, method: str, path: str, headers: list[tuple[str, str]], raw: bytes
    ) -> Recorded:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            rec = Recorded(len(self.requests), method, path, headers, raw, body)
            rec.request_id = f"req_011fake{next(self._ids):012d}"
            self.requests.append(rec)
        return rec

    def decide(self, rec: Recorded) -> HttpError | Reply:
        """The answer to ``rec``: an HTTP error, or a scripted turn with its usage."""
        path = urlsplit(rec.path).path
        if rec.method != "POST" or path != "/v1/messages":
            return HttpError(
                404,
                "not_found_error",
                f"{rec.method} {path}: the fake Messages API serves only POST /v1/messages",
            )
        key = rec.api_key
        if key is None or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            why = "invalid x-api-key" if rec.header("x-api-key") else "invalid bearer token"
            return HttpError(401, "authentication_error", why if key else "x-api-key is required")
        if not rec.header("anthropic-version"):
            return HttpError(400, "invalid_request_error", "anthropic-version: header is required")
        with self._lock:
            problem = check(rec.body, set(self.issued), self.signed)
            if problem:
                return HttpError(400, "invalid_request_error", problem)
            if not self._script:
                why = f"no scripted turn left: request #{rec.index} came after the script ended"
                return HttpError(500, "api_error", why, (("x-should-retry", "false"),))
            rec.turn = turn = self._script.popleft()
            if turn.error is not None:
                return turn.error
            self.issued.update(
                (b.id, b.name) for b in turn.blocks if isinstance(b, ToolUse) and b.id
            )
            self.signed.update(s for b in turn.blocks if (s := signature(b)))
            usage = self.cache.account(rec.body)
            message_id = f"msg_011fake{next(self._ids):012d}"
        return Reply(turn, message_id, str(rec.body["model"]), usage)


def signature(block: Block) -> str | None:
    """What a client must hand back unchanged: a thinking block's signature, redacted data."""
    match block:
        case Thinking(signature=s) | RedactedThinking(data=s):
            return s
    return None


def trusting(ca: trustme.CA | str) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca`` (a trustme CA, or a PEM file's path) and the
    system roots: what a test hands the SDK, as the autouse fixture clears SSL_CERT_FILE."""
    ctx = ssl.create_default_context()
    if isinstance(ca, str):
        ctx.load_verify_locations(cafile=ca)
    else:
        ca.configure_trust(ctx)
    return ctx


def sdk_client(
    base_url: str, ca: trustme.CA | str, *, api_key: str, proxy: str | None = None, **kw: Any
) -> anthropic.Anthropic:
    """The real ``anthropic.Anthropic`` client (SDK 2.x: httpx2 underneath) for ``base_url``,
    trusting ``ca``, optionally through ``proxy`` (an http:// proxy URL)."""
    import anthropic

    http = anthropic.DefaultHttpxClient(verify=trusting(ca), proxy=proxy, trust_env=False)
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, http_client=http, **kw)
