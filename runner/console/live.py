"""``GET /runs/{id}/events``: a running run's new output and transcript lines, as server-sent
events, until it ends.

    event: output      data: a JSON string (the next piece of output.log, decoded)
    event: transcript  data: a JSON list of conversation blocks (``transcript.Block``)
    event: end         data: {"status": "<the run's status>"}

The page says where it stopped (``?output=<byte offset>&transcript=<lines>``), so nothing is
sent twice. The files are polled every ``poll_s``; a client that goes away ends the stream
(Starlette cancels it), and so does ``MAX_STREAM_S``.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runner.console import files, run_view
from runner.console.context import Console, api, api_error
from runner.console.transcript import Conversation
from runner.history.errors import RunNotFound

CHUNK: Final = 256 * 1024
HEARTBEAT_S: Final = 15.0
MAX_STREAM_S: Final = 24 * 3600.0


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass
class Follower:
    """Where a stream is in a run's files; ``poll`` reads what came since (blocking I/O)."""

    directory: Path
    output_at: int
    transcript_at: int = 0  # a byte offset
    lines: int = 0  # transcript lines read
    conversation: Conversation = field(default_factory=Conversation)
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def skip_lines(self, count: int) -> None:
        """Start after the first ``count`` transcript lines (read, to learn the tool names)."""
        data = files.read_from(self.directory / run_view.TRANSCRIPT, 0, files.TRANSCRIPT_CAP)
        kept = data.split(b"\n")[:count]
        for line in kept:
            self.conversation.feed(line.decode("utf-8", "replace"))
        self.transcript_at = sum(len(line) + 1 for line in kept)
        self.lines = len(kept)

    @property
    def where(self) -> str:
        """The event id: how far the stream got (a reconnect sends it as Last-Event-ID)."""
        return f"{self.output_at}-{self.lines}"

    def poll(self) -> list[bytes]:
        events: list[bytes] = []
        chunk = files.read_from(self.directory / "output.log", self.output_at, CHUNK)
        if chunk:
            self.output_at += len(chunk)
            if text := self.decoder.decode(chunk):
                events.append(sse("output", text, self.where))
        path = self.directory / run_view.TRANSCRIPT
        data = files.read_from(path, self.transcript_at, CHUNK)
        complete = data[: data.rfind(b"\n") + 1]
        self.transcript_at += len(complete)
        for line in complete.decode("utf-8", "replace").split("\n")[:-1]:
            self.lines += 1
            if blocks := self.conversation.feed(line):
                events.append(sse("transcript", [b.as_json() for b in blocks], self.where))
        return events


def _number(text: str | None) -> int | None:
    if text is None or text == "":
        return 0
    return int(text) if text.isascii() and text.isdigit() and len(text) < 16 else None


def routes(console: Console, *, poll_s: float = 0.5,
           monotonic: Callable[[], float] = time.monotonic) -> list[Route]:  # fmt: skip
    history = console.history

    async def events(request: Request) -> Response:
        query = request.query_params
        output_at, lines = _number(query.get("output")), _number(query.get("transcript"))
        resumed = request.headers.get("last-event-id", "").split("-")
        if len(resumed) == 2:  # a reconnect: where the last event left off
            output_at, lines = _number(resumed[0]), _number(resumed[1])
        if output_at is None or lines is None:
            return api_error(400, "output and transcript must be whole numbers (offsets)")
        try:
            run = await run_in_threadpool(history.runs.get_run, request.path_params["run_id"])
        except RunNotFound as exc:
            return api_error(404, exc.message)
        follower = Follower(run_view.run_dir(console.home, run), output_at)
        await run_in_threadpool(follower.skip_lines, lines)

        def status() -> str | None:
            """The run's status once it ended, else None."""
            row = history.runs.get_run(run.id)
            live = run_view.is_live(row, run_view.record_of(follower.directory))
            return None if live else row.status

        async def stream() -> AsyncIterator[bytes]:
            started = beat = monotonic()
            while monotonic() - started < MAX_STREAM_S:
                ended = await run_in_threadpool(status)
                for event in await run_in_threadpool(follower.poll):
                    yield event
                    beat = monotonic()
                if ended is not None:
                    yield sse("end", {"status": ended})
                    return
                if monotonic() - beat > HEARTBEAT_S:
                    yield b": keep-alive\n\n"
                    beat = monotonic()
                await asyncio.sleep(poll_s)

        headers = {"X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return [Route("/runs/{run_id}/events", api(console, events), methods=["GET"])]
