"""What every console handler shares (``Console``), and the wrappers that put the access
rules in front of each handler: ``page`` (HTML: 303 to /login when not signed in) and ``api``
(JSON: 401). Both add ``SECURITY_HEADERS``; on POST both refuse (403) a cross-site request or
a cookie session without its CSRF token (form field ``csrf``, or header ``X-CSRF-Token``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from core.errors import CoatcheckError
from runner.console.forms import read_form
from runner.console.guard import SECURITY_HEADERS, Guard
from runner.console.ratelimit import Failures
from runner.console.render import Pages
from runner.history.store import History
from runner.serve.book import Book

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Console:
    history: History
    home: Path
    actions: Any
    guard: Guard
    failures: Failures
    clock: Callable[[], datetime]
    pages: Pages = field(default_factory=Pages)
    book: Book = field(default_factory=Book)

    def error_page(self, request: Request, status: int, message: str) -> Response:
        return self.pages.render(request, "error.html", status, error=message)


def _harden(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def page(console: Console, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        who = console.guard.who(request.headers, request.cookies)
        if who is None:
            return RedirectResponse("/login", 303, headers=SECURITY_HEADERS)
        request.state.who = who
        if request.method == "POST":
            form = await read_form(request)
            if form is None:
                return console.error_page(request, 400, "send a short urlencoded form")
            request.state.form = form
            why = console.guard.refusal(who, request.headers, form.get("csrf"))
            if why is not None:
                return console.error_page(request, 403, why)
        try:
            return _harden(await handler(request))
        except CoatcheckError as exc:
            return console.error_page(request, 500, exc.message)

    return endpoint


def api_error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers={**SECURITY_HEADERS, **headers})


def api(console: Console, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        who = console.guard.who(request.headers, request.cookies)
        if who is None:
            message = "sign in: send Authorization: Bearer <the token of coatcheck serve token>"
            return api_error(401, message, **{"WWW-Authenticate": "Bearer"})
        request.state.who = who
        if request.method == "POST":
            why = console.guard.refusal(who, request.headers, request.headers.get("x-csrf-token"))
            if why is not None:
                return api_error(403, why)
        try:
            return _harden(await handler(request))
        except CoatcheckError as exc:
            return api_error(500, exc.message)

    return endpoint
