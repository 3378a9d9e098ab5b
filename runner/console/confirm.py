"""Actions from the pages, each behind a confirmation page (no JavaScript needed):
``GET /deployments/{name}/confirm/{action}`` shows the form, ``POST /deployments/{name}/{action}``
does it (CSRF-checked by ``page``) and goes back to the deployment with a flash line; a
refusal shows the form again with the reason."""

from __future__ import annotations

from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.errors import CoatcheckError
from runner.console.context import Console, page
from runner.console.operations import VERBS, done, perform, status_of


def routes(console: Console) -> list[Route]:
    def form(request: Request, status: int = 200, error: str | None = None) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        return console.pages.render(request, "confirm.html", status, name=name, action=action,
                                    verb=VERBS[action], error=error)  # fmt: skip

    async def confirm(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in VERBS:
            return console.error_page(request, 404, f"no action {action!r}")
        if await run_in_threadpool(console.history.deployments.find, name) is None:
            return console.error_page(request, 404, f"no deployment named {name!r}")
        return form(request)

    async def act(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in VERBS:
            return console.error_page(request, 404, f"no action {action!r}")
        note = request.state.form.get("note")
        try:
            result = await run_in_threadpool(perform, console.actions, name, action, note)
        except CoatcheckError as exc:
            return form(request, status_of(exc), exc.message)
        session = request.state.who.session
        if session is not None:
            session.flash.append(done(name, action, result))
        return RedirectResponse(f"/deployments/{quote(name)}", 303)

    return [
        Route("/deployments/{name}/confirm/{action}", page(console, confirm), methods=["GET"]),
        Route("/deployments/{name}/{action}", page(console, act), methods=["POST"]),
    ]
