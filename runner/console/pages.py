"""The console's pages: deployments (``/``), one deployment, one run (and its artifacts), the
vault. Each gathers its data in a worker thread (SQLite and files) and renders a template."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from core.errors import CoatcheckError
from runner.console import chart, deployment_view, run_view, vault_view
from runner.console.artifacts import open_artifact
from runner.console.context import Console, page
from runner.history.errors import RunNotFound

RUNS_SHOWN = 50
CHUNK = 64 * 1024


def routes(console: Console) -> list[Route]:
    history = console.history

    async def deployments(request: Request) -> Response:
        def gather() -> list[deployment_view.DeploymentView]:
            now = console.clock()
            return [deployment_view.view(d, history, console.book, now=now, n=1)
                    for d in history.deployments.list()]  # fmt: skip

        rows = await run_in_threadpool(gather)
        return console.pages.render(request, "deployments.html", rows=rows)

    async def deployment(request: Request) -> Response:
        name = request.path_params["name"]

        def gather() -> tuple[deployment_view.DeploymentView, list[chart.Bar], list] | None:
            dep = history.deployments.find(name)
            if dep is None:
                return None
            v = deployment_view.view(dep, history, console.book, now=console.clock(), n=5)
            runs = history.runs.list_runs(name, None, limit=RUNS_SHOWN)
            return v, chart.bars(runs), runs

        found = await run_in_threadpool(gather)
        if found is None:
            return console.error_page(request, 404, f"no deployment named {name!r}")
        v, bars, runs = found
        return console.pages.render(request, "deployment.html", d=v, bars=bars, runs=runs,
                                    chart_width=chart.WIDTH, chart_height=chart.HEIGHT,
                                    duration=chart.duration_s)  # fmt: skip

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def gather() -> run_view.RunView:
            row = history.runs.get_run(run_id)
            return run_view.load(row, run_view.run_dir(console.home, row))

        try:
            v = await run_in_threadpool(gather)
        except RunNotFound as exc:
            return console.error_page(request, 404, exc.message)
        return console.pages.render(request, "run.html", v=v, quote=quote)

    async def artifact(request: Request) -> Response:
        run_id, relative = request.path_params["run_id"], request.path_params["path"]

        def find() -> tuple[int, int] | None:
            row = history.runs.get_run(run_id)
            return open_artifact(run_view.run_dir(console.home, row), relative)

        try:
            opened = await run_in_threadpool(find)
        except RunNotFound as exc:
            return console.error_page(request, 404, exc.message)
        if opened is None:
            return console.error_page(request, 404, "no such artifact in this run's out/")
        fd, size = opened
        name = relative.rsplit("/", 1)[-1]
        fallback = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in name)
        disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
        headers = {"Content-Disposition": disposition, "Content-Length": str(size)}
        kind = "application/octet-stream"
        return StreamingResponse(_chunks(os.fdopen(fd, "rb")), media_type=kind, headers=headers)

    async def vault(request: Request) -> Response:
        try:
            rows = await run_in_threadpool(vault_view.rows, console.home, console.clock())
        except CoatcheckError as exc:
            return console.pages.render(request, "vault.html", rows=[], error=exc.message)
        return console.pages.render(request, "vault.html", rows=rows)

    return [
        Route("/", page(console, deployments), methods=["GET"]),
        Route("/deployments/{name}", page(console, deployment), methods=["GET"]),
        Route("/runs/{run_id}", page(console, run), methods=["GET"]),
        Route("/runs/{run_id}/artifacts/{path:path}", page(console, artifact), methods=["GET"]),
        Route("/vault", page(console, vault), methods=["GET"]),
    ]


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk
