"""The public HTTP API of `coatcheck serve`: a thin Starlette adapter over `Firing`.

    GET  /v1/health                      200 {"ok": true}
    POST /v1/deployments/{name}/fire     bearer token, optional Idempotency-Key (alias: /run)
    POST /v1/deployments/{name}/github   a GitHub webhook, signed with the deployment's secret

Every answer is JSON and every error is ``{"error": "<what is wrong, and the fix>"}``. The
checks themselves are pure (`runner.serve.tokens`, `runner.serve.github`); this module only
orders them, caps the body and answers. Each request writes one canonical log line
(``http_request``) that never carries a token, a signature, a secret or a body.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import logs
from runner.serve import github, tokens
from runner.serve.firing import Fired, Firing, Target, Trigger

HTTP_EVENT = "http_request"
# Keys of this line that core.logs does not define (yet).
DEPLOYMENT = "deployment"
TRIGGER = "trigger"
OUTCOME = "outcome"
DELIVERY = "delivery"

_NOTE = "coatcheck.log"  # scope key: what the handler tells the canonical line
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII
_DEFAULT_RETRY = 60  # seconds, when the scheduler gives no hint
_NAME_IN_LOG = 100  # an unknown name is caller input: bound what reaches the log
_LIMITS = {
    "daily_cap": "the deployment reached its schedule.daily_cap of runs for today",
    "min_interval": "the last run started less than schedule.min_interval ago",
}


def _answer(
    request: Request,
    status: int,
    body: dict[str, Any] | str,
    *,
    outcome: str = "rejected",
    reason: str | None = None,
    run_id: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON answer (a str ``body`` is an error message), noted for the canonical line."""
    note = {OUTCOME: outcome, logs.REASON: reason, logs.RUN_ID: run_id}
    request.scope.setdefault(_NOTE, {}).update(note)
    content = {"error": body} if isinstance(body, str) else body
    return JSONResponse(content, status, headers=headers)


def _status(request: Request, name: str, status: Literal["paused", "archived"]) -> JSONResponse:
    if status == "paused":
        message = f"deployment {name} is paused; resume it, or set schedule.allow_when_paused"
        return _answer(request, 409, message, outcome="refused", reason=status)
    message = f"deployment {name} is archived and can't run again; create a new deployment"
    return _answer(request, 410, message, outcome="refused", reason=status)


async def _target(request: Request, firing: Firing, trigger: Trigger) -> Target | JSONResponse:
    """The deployment named in the path, or the 404/410 that answers for it."""
    name: str = request.path_params["name"]
    request.scope.setdefault(_NOTE, {}).update({DEPLOYMENT: name[:_NAME_IN_LOG], TRIGGER: trigger})
    target = await run_in_threadpool(firing.lookup, name)
    if target is None:
        message = "no deployment has this name; check the URL against coatcheck deployments list"
        return _answer(request, 404, message, reason="unknown_deployment")
    if target.status == "archived":
        return _status(request, target.name, "archived")
    return target


def _stopped(request: Request, target: Target) -> JSONResponse | None:
    """409 when the deployment is paused and does not allow triggers while paused."""
    if target.status == "paused" and not target.allow_when_paused:
        return _status(request, target.name, "paused")
    return None


async def _read_capped(request: Request) -> bytes | None:
    """The raw body, or None when it is over `github.MAX_BODY` bytes.

    A declared Content-Length over the cap is refused unread; otherwise the stream stops at
    the first chunk that crosses the cap, so at most the cap and one chunk are held."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > github.MAX_BODY:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > github.MAX_BODY:
            return None
    return bytes(body)


def _too_large(request: Request) -> JSONResponse:
    message = f"body over {github.MAX_BODY} bytes; send less, or hand the job a URL to fetch"
    return _answer(request, 413, message, reason="too_large")


def _refused(request: Request, name: str, fired: Fired) -> JSONResponse | None:
    """The answer for a run the scheduler refused, or None when it did not refuse."""
    reason = fired.refused
    if reason is None:
        return None
    if reason == "daily_cap" or reason == "min_interval":
        hint = fired.retry_after if fired.retry_after is not None else math.nan
        wait = max(1, math.ceil(hint)) if math.isfinite(hint) else _DEFAULT_RETRY
        message = f"{_LIMITS[reason]}; retry in {wait} seconds (the Retry-After header)"
        body: dict[str, Any] = {"error": message, "reason": reason}
        headers = {"Retry-After": str(wait)}
        return _answer(request, 429, body, outcome="refused", reason=reason, headers=headers)
    if reason == "overlap":
        message = (
            f"a run of {name} is still going and schedule.overlap skips new ones; "
            'retry when it ends, or set overlap = "queue_one"'
        )
        body = {"error": message, "run_id": fired.run_id, "reason": reason}
        return _answer(request, 409, body, outcome="refused", reason=reason, run_id=fired.run_id)
    return _status(request, name, reason)


def public_app(
    firing: Firing, *, log: Any = None, extra_routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The public API over ``firing``; ``log`` gets one ``http_request`` line per request."""

    async def health(request: Request) -> JSONResponse:
        return _answer(request, 200, {"ok": True}, outcome="ok")

    async def fire(request: Request) -> JSONResponse:
        target = await _target(request, firing, "api")
        if isinstance(target, JSONResponse):
            return target
        token = tokens.bearer(request.headers.get("authorization"))
        if not tokens.token_matches(token, target.token_hash):
            message = "missing or wrong token; send Authorization: Bearer <the deployment's token>"
            headers = {"WWW-Authenticate": "Bearer"}
            return _answer(request, 401, message, reason="bad_token", headers=headers)
        if (stopped := _stopped(request, target)) is not None:
            return stopped
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            message = "Idempotency-Key must be 1 to 255 visible ASCII characters, e.g. a UUID"
            return _answer(request, 400, message, reason="bad_idempotency_key")
        body = await _read_capped(request)
        if body is None:
            return _too_large(request)
        fired = await run_in_threadpool(
            firing.fire, target.name, trigger="api", actor="api", key=key, body=body or None
        )
        if (refused := _refused(request, target.name, fired)) is not None:
            return refused
        answer = {"run_id": fired.run_id, "created": fired.created}
        outcome = "fired" if fired.created else "repeat"
        return _answer(request, 202, answer, outcome=outcome, run_id=fired.run_id)

    async def webhook(request: Request) -> JSONResponse:
        target = await _target(request, firing, "webhook")
        if isinstance(target, JSONResponse):
            return target
        setup = f"coatcheck deployments webhook {target.name}"
        if not target.webhook_secret:
            message = f"no GitHub webhook is set up for this deployment; run {setup}"
            return _answer(request, 404, message, reason="no_webhook")
        raw = await _read_capped(request)
        if raw is None:
            return _too_large(request)
        signature = request.headers.get("x-hub-signature-256")
        if not github.signature_ok(target.webhook_secret, raw, signature):
            message = f"X-Hub-Signature-256 missing or wrong; use the secret {setup} printed"
            return _answer(request, 401, message, reason="bad_signature")
        delivery = github.parse_delivery(request.headers, raw)
        if isinstance(delivery, github.Rejected):
            return _answer(request, delivery.status, delivery.reason, reason="bad_delivery")
        request.scope[_NOTE][DELIVERY] = delivery.delivery_id
        if delivery.is_ping:
            return _answer(request, 200, {"ok": True, "ping": True}, outcome="ping")
        if (stopped := _stopped(request, target)) is not None:
            return stopped
        if target.github is None:
            ok, why = False, 'no [trigger.github] table; add one, e.g. events = ["push"]'
        else:
            ok, why = github.match(delivery, target.github)
        if not ok:
            return _answer(request, 200, {"ignored": why}, outcome="ignored", reason=why)
        actor = delivery.sender or "github"
        fired = await run_in_threadpool(
            firing.fire, target.name, trigger="webhook", actor=actor, key=delivery.delivery_id,
            body=raw,
        )  # fmt: skip
        if (refused := _refused(request, target.name, fired)) is not None:
            return refused
        if not fired.created:
            answer = {"run_id": fired.run_id, "duplicate": True}
            return _answer(request, 200, answer, outcome="duplicate", run_id=fired.run_id)
        answer = {"run_id": fired.run_id, "created": True}
        return _answer(request, 202, answer, outcome="fired", run_id=fired.run_id)

    routes = [
        Route("/v1/health", health, methods=["GET"]),
        Route("/v1/deployments/{name}/fire", fire, methods=["POST"]),
        Route("/v1/deployments/{name}/run", fire, methods=["POST"]),
        Route("/v1/deployments/{name}/github", webhook, methods=["POST"]),
        *extra_routes,  # the web console (runner/console), with its own access rules
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_CanonicalLine, log=structlog.get_logger() if log is None else log)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown routes (404) and wrong methods (405), in JSON like every other answer."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "another method")
        message = f"method {request.method} is not allowed here; use {allow}"
    elif exc.status_code == 404:
        message = "no such endpoint; use POST /v1/deployments/NAME/fire or /github"
    else:
        message = str(exc.detail)
    return _answer(request, exc.status_code, message, reason="route", headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": "internal error; see the coatcheck serve log"}, 500)


class _CanonicalLine:
    """ASGI middleware: one ``http_request`` line per request, from what the handler noted."""

    def __init__(self, app: ASGIApp, *, log: Any) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        note: dict[str, Any] = {}
        scope[_NOTE] = note
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            status = 500
            note.update({OUTCOME: "error", logs.REASON: type(e).__name__})
            raise
        finally:
            self.log.info(
                HTTP_EVENT,
                **{
                    logs.METHOD: scope["method"],
                    logs.PATH: getattr(scope.get("route"), "path", None),
                    logs.STATUS: status,
                    **{k: note.get(k) for k in (DEPLOYMENT, TRIGGER, DELIVERY, logs.RUN_ID)},
                    OUTCOME: note.get(OUTCOME),
                    logs.REASON: note.get(logs.REASON),
                    logs.DURATION_MS: round((time.monotonic() - start) * 1000, 2),
                },
            )
