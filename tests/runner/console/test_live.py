"""Server-sent events of a running run: new output and transcript lines, then ``end``; a
resumed stream (Last-Event-ID) sends nothing twice. One test follows a run on a real server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from runner.serve.http import run_http
from tests.runner.console.conftest import TRANSCRIPT, XSS, Seeded


def events(body: str) -> list[tuple[str, str | None, Any]]:
    """``(event, id, data)`` of each event in an SSE body."""
    out = []
    for chunk in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("id"), json.loads(fields["data"])))
    return out


def finish(seeded: Seeded, *, more: str = "") -> None:
    directory = seeded.home / "runs" / seeded.running
    with open(directory / "output.log", "a") as f:
        f.write(more)
    with open(directory / "transcript.jsonl", "a") as f:
        f.write("".join(TRANSCRIPT.splitlines(keepends=True)[1:]))
    record = json.loads((directory / "run.json").read_text())
    (directory / "run.json").write_text(json.dumps({**record, "status": "succeeded"}))
    seeded.history.runs.finish(seeded.running, "succeeded", exit_code=0)


def test_stream_sends_what_is_new_then_end(client: TestClient, seeded: Seeded) -> None:
    finish(seeded, more="two " + XSS + "\n")
    answer = client.get(f"/runs/{seeded.running}/events?output=9&transcript=1")
    assert answer.headers["content-type"].startswith("text/event-stream")
    got = events(answer.text)
    assert [e[0] for e in got] == ["output", "transcript", "transcript", "end"]
    assert got[0][2] == "two " + XSS + "\n"
    assert got[1][2][0]["role"] == "assistant"
    call = json.dumps({"command": "ls " + XSS}, indent=2)
    assert got[1][2][0]["parts"][1] == {"kind": "tool_call", "title": "bash", "error": False,
                                        "text": call}  # fmt: skip
    assert got[2][2][0]["parts"][0]["title"] == "bash"
    assert got[3][2] == {"status": "succeeded"}
    assert got[2][1] == f"{9 + len('two ' + XSS + chr(10))}-3"


def test_a_resumed_stream_starts_where_the_last_event_was(
    client: TestClient, seeded: Seeded
) -> None:
    finish(seeded, more="two\nthree\n")
    answer = client.get(f"/runs/{seeded.running}/events", headers={"Last-Event-ID": "13-2"})
    got = events(answer.text)
    assert [(e[0], e[2]) for e in got][0] == ("output", "three\n")
    assert [e[0] for e in got] == ["output", "transcript", "end"]


def test_a_finished_run_ends_at_once(client: TestClient, seeded: Seeded) -> None:
    got = events(client.get(f"/runs/{seeded.ok}/events?output=1000000&transcript=99").text)
    assert got == [("end", None, {"status": "succeeded"})]


@pytest.mark.parametrize("query", ["output=-1", "transcript=x", "output=99999999999999999"])
def test_bad_offsets_are_400(client: TestClient, seeded: Seeded, query: str) -> None:
    assert client.get(f"/runs/{seeded.running}/events?{query}").status_code == 400


@pytest.fixture
def server(app: Starlette) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()
    thread = threading.Thread(target=run_http, args=(app, sock, stop), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=30)
    sock.close()


def test_a_live_run_is_followed(server: str, seeded: Seeded) -> None:
    auth = {"Authorization": f"Bearer {seeded.token}"}
    url = f"{server}/runs/{seeded.running}/events?output=0&transcript=1"
    seen: list[tuple[str, Any]] = []
    with httpx.Client(timeout=20) as http, http.stream("GET", url, headers=auth) as answer:
        assert answer.status_code == 200
        kind = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind is not None:
                seen.append((kind, json.loads(line[6:])))
                if seen == [("output", "line one\n")]:
                    with open(seeded.home / "runs" / seeded.running / "output.log", "a") as f:
                        f.write("line two\n")
                elif seen[-1] == ("output", "line two\n"):
                    finish(seeded)
    assert seen[:2] == [("output", "line one\n"), ("output", "line two\n")]
    assert [k for k, _ in seen[2:]] == ["transcript", "transcript", "end"]
