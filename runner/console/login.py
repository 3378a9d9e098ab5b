"""Signing in and out: ``GET/POST /login`` (the admin token of ``coatcheck serve token``),
``POST /logout``. A good token makes a server-side session and its cookie
(``HttpOnly; Secure; SameSite=Strict; Path=/``); failures are counted per client (429 past
the limit). The token is compared as its SHA-256, in constant time, and never logged."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from runner.console.context import Console, page
from runner.console.forms import read_form
from runner.console.guard import SECURITY_HEADERS, cross_site
from runner.console.sessions import COOKIE, LIFETIME

NO_TOKEN = "no admin token is set yet: run `coatcheck serve token` and sign in with what it prints"  # noqa: S105 - a message
BAD_TOKEN = "wrong token; use the one `coatcheck serve token` printed (a new one replaces it)"  # noqa: S105


def routes(console: Console) -> list[Route]:
    guard = console.guard

    async def login_form(request: Request) -> Response:
        if guard.who(request.headers, request.cookies) is not None:
            return RedirectResponse("/", 303, headers=SECURITY_HEADERS)
        return console.pages.render(request, "login.html", error=_unset(console))

    async def login(request: Request) -> Response:
        if (why := cross_site(request.headers)) is not None:
            return console.pages.render(request, "login.html", 403, error=why)
        client = request.client.host if request.client else "unknown"
        if (wait := console.failures.blocked(client)) is not None:
            refused = console.pages.render(
                request, "login.html", 429,
                error=f"too many failed sign-ins; wait {wait} s and try again",
            )  # fmt: skip
            refused.headers["Retry-After"] = str(wait)
            return refused
        form = await read_form(request)
        token = form.get("token") if form is not None else None
        if not isinstance(token, str) or not guard.token_ok(token.strip()):
            console.failures.fail(client)
            message = _unset(console) or BAD_TOKEN
            return console.pages.render(request, "login.html", 401, error=message)
        session_id, _ = guard.sessions.create(guard.token_hash() or "")
        response = RedirectResponse("/", 303, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, session_id, max_age=int(LIFETIME.total_seconds()), path="/",
                            secure=True, httponly=True, samesite="strict")  # fmt: skip
        return response

    async def logout(request: Request) -> Response:
        guard.sessions.drop(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", page(console, logout), methods=["POST"]),
    ]


def _unset(console: Console) -> str | None:
    return NO_TOKEN if console.guard.token_hash() is None else None
