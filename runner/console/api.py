"""The console's JSON API, for scripts (``Authorization: Bearer <admin token>``) and pages:

    GET  /v1/console/deployments                       every deployment, as the list page
    GET  /v1/console/runs?deployment=&status=&limit=   runs, newest first
    GET  /v1/console/runs/{id}                         one run
    POST /v1/console/deployments/{name}/pause          optional JSON body {"note": "..."}
    POST /v1/console/deployments/{name}/unpause|run|archive

Errors are ``{"error": "<what is wrong, and the fix>"}``. A cookie session must send its CSRF
token as ``X-CSRF-Token`` on POST; a bearer token needs none."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import CoatcheckError
from runner.console import deployment_view
from runner.console.context import Console, api, api_error
from runner.console.operations import VERBS, perform, status_of
from runner.console.run_view import run_json
from runner.history.errors import RunNotFound
from runner.history.runrow import STATUSES

MAX_BODY = 16 * 1024
MAX_LIMIT = 500


def routes(console: Console) -> list[Route]:
    history = console.history

    async def deployments(request: Request) -> Response:
        def gather() -> list[dict[str, Any]]:
            now = console.clock()
            return [deployment_view.as_json(deployment_view.view(d, history, console.book,
                                                                 now=now, n=5))
                    for d in history.deployments.list()]  # fmt: skip

        return JSONResponse({"deployments": await run_in_threadpool(gather)})

    async def runs(request: Request) -> Response:
        query = request.query_params
        status: Any = query.get("status") or None
        if status is not None and status not in STATUSES:
            words = ", ".join(STATUSES)
            return api_error(400, f"unknown status {status[:40]!r}; use one of {words}")
        limit = query.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            return api_error(400, f"limit must be a number from 1 to {MAX_LIMIT}")
        found = await run_in_threadpool(history.runs.list_runs, query.get("deployment") or None,
                                        status, limit=int(limit))  # fmt: skip
        return JSONResponse({"runs": [run_json(r) for r in found]})

    async def one_run(request: Request) -> Response:
        try:
            row = await run_in_threadpool(history.runs.get_run, request.path_params["run_id"])
        except RunNotFound as exc:
            return api_error(404, exc.message)
        return JSONResponse(run_json(row))

    async def act(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in VERBS:
            return api_error(404, f"no action {action!r}; use one of {', '.join(VERBS)}")
        note = await _note(request)
        if isinstance(note, JSONResponse):
            return note
        try:
            result = await run_in_threadpool(perform, console.actions, name, action, note)
        except CoatcheckError as exc:
            return api_error(status_of(exc), exc.message)
        return JSONResponse(result)

    return [
        Route("/v1/console/deployments", api(console, deployments), methods=["GET"]),
        Route("/v1/console/runs", api(console, runs), methods=["GET"]),
        Route("/v1/console/runs/{run_id}", api(console, one_run), methods=["GET"]),
        Route("/v1/console/deployments/{name}/{action}", api(console, act), methods=["POST"]),
    ]


async def _note(request: Request) -> str | None | JSONResponse:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return api_error(413, f"body over {MAX_BODY} bytes; send at most a short note")
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return api_error(400, 'the body must be JSON, e.g. {"note": "until the fix is out"}')
    note = data.get("note") if isinstance(data, dict) else None
    if note is not None and not isinstance(note, str):
        return api_error(400, 'note must be a string, e.g. {"note": "until the fix is out"}')
    return note
