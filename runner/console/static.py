"""``/static/console.css`` and ``/static/live.js``: the console's own assets, from the package
(no CDN, no build step). Only the names listed here are served; they need no sign-in (the
login page uses the stylesheet) and hold nothing private."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.console.guard import SECURITY_HEADERS

ASSETS: Final = {
    "console.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("runner.console").joinpath("static", name).read_bytes()


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    kind = ASSETS.get(name)
    if kind is None:
        return Response("no such asset\n", 404, media_type="text/plain", headers=SECURITY_HEADERS)
    return Response(_asset(name), media_type=kind, headers=SECURITY_HEADERS)


def routes() -> list[Route]:
    return [Route("/static/{name}", asset, methods=["GET"])]
